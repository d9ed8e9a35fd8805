// Command smoke drives a Tasques server through the Go client that oapi-codegen generates from openapi.yaml
// into ./tasques (see scripts/gen-clients): create -> claim -> report -> done of one task, then the same for two
// more through the batch endpoints (one POST /tasques/reports, one POST /tasques/done that also names a missing task).
//
//	smoke <base-url> <queue> <worker-id> <result-json>
//
// On success it prints {"queue": ..., "id": ..., "batch_ids": [...]} on stdout; batch task i is finished with
// {"item": i, "result": <result-json>}.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"time"

	"tasques-go-smoke/tasques"
)

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: smoke <base-url> <queue> <worker-id> <result-json>")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3], os.Args[4]); err != nil {
		fmt.Fprintln(os.Stderr, "go smoke:", err)
		os.Exit(1)
	}
}

func expect(step string, status int, want int, body []byte) error {
	if status != want {
		return fmt.Errorf("%s: HTTP %d, want %d: %s", step, status, want, body)
	}
	return nil
}

func run(baseURL, queue, workerID, resultJSON string) error {
	var result map[string]interface{}
	if err := json.Unmarshal([]byte(resultJSON), &result); err != nil {
		return fmt.Errorf("result-json: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := tasques.NewClientWithResponses(baseURL, tasques.WithHTTPClient(&http.Client{Timeout: 20 * time.Second}))
	if err != nil {
		return err
	}

	args := map[string]interface{}{"greeting": "hello", "n": 1.0}
	created, err := client.CreateTaskWithResponse(ctx, tasques.NewTask{Queue: queue, Kind: "goSmoke", Args: &args})
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	if err := expect("create", created.StatusCode(), http.StatusCreated, created.Body); err != nil {
		return err
	}
	task := created.JSON201
	if task == nil || task.State != tasques.Queued || task.Queue != queue || task.Args == nil || !reflect.DeepEqual(*task.Args, args) {
		return fmt.Errorf("create: unexpected task %s", created.Body)
	}
	id := task.Id

	amount, blockFor := 1, "1s"
	claimed, err := client.ClaimTasksWithResponse(ctx, &tasques.ClaimTasksParams{XTASQUESWORKERID: workerID},
		tasques.Claim{Queues: []string{queue}, Amount: &amount, BlockFor: &blockFor})
	if err != nil {
		return fmt.Errorf("claim: %w", err)
	}
	if err := expect("claim", claimed.StatusCode(), http.StatusOK, claimed.Body); err != nil {
		return err
	}
	if claimed.JSON200 == nil || len(*claimed.JSON200) != 1 {
		return fmt.Errorf("claim: want one task, got %s", claimed.Body)
	}
	if got := (*claimed.JSON200)[0]; got.Id != id || got.State != tasques.Claimed || got.LastClaimed == nil || got.LastClaimed.WorkerId != workerID {
		return fmt.Errorf("claim: unexpected task %s", claimed.Body)
	}

	progress := map[string]interface{}{"progress": 50.0}
	reported, err := client.ReportOnClaimedTaskWithResponse(ctx, queue, id,
		&tasques.ReportOnClaimedTaskParams{XTASQUESWORKERID: workerID}, tasques.NewReport{Data: &progress})
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := expect("report", reported.StatusCode(), http.StatusOK, reported.Body); err != nil {
		return err
	}
	if t := reported.JSON200; t == nil || t.LastClaimed == nil || t.LastClaimed.LastReport == nil ||
		t.LastClaimed.LastReport.Data == nil || !reflect.DeepEqual(*t.LastClaimed.LastReport.Data, progress) {
		return fmt.Errorf("report: unexpected task %s", reported.Body)
	}

	done, err := client.MarkClaimedTaskDoneWithResponse(ctx, queue, id,
		&tasques.MarkClaimedTaskDoneParams{XTASQUESWORKERID: workerID}, tasques.Success{Data: &result})
	if err != nil {
		return fmt.Errorf("done: %w", err)
	}
	if err := expect("done", done.StatusCode(), http.StatusOK, done.Body); err != nil {
		return err
	}
	if t := done.JSON200; t == nil || t.State != tasques.Done || t.LastClaimed == nil || t.LastClaimed.Result == nil ||
		t.LastClaimed.Result.Success == nil || !reflect.DeepEqual(*t.LastClaimed.Result.Success, result) {
		return fmt.Errorf("done: unexpected task %s", done.Body)
	}

	batchIDs, err := batch(ctx, client, queue, workerID, args, progress, result)
	if err != nil {
		return err
	}

	out, err := json.Marshal(map[string]interface{}{"queue": queue, "id": id, "batch_ids": batchIDs})
	if err != nil {
		return err
	}
	fmt.Println(string(out))
	return nil
}

// claimTwo creates two tasks and claims both with one call; it returns their ids in creation order and each one's
// claim id.
func claimTwo(ctx context.Context, client *tasques.ClientWithResponses, queue, workerID string,
	args map[string]interface{}) ([]string, map[string]string, error) {
	var ids []string
	for range 2 {
		created, err := client.CreateTaskWithResponse(ctx, tasques.NewTask{Queue: queue, Kind: "goSmoke", Args: &args})
		if err != nil {
			return nil, nil, fmt.Errorf("batch create: %w", err)
		}
		if err := expect("batch create", created.StatusCode(), http.StatusCreated, created.Body); err != nil {
			return nil, nil, err
		}
		if created.JSON201 == nil {
			return nil, nil, fmt.Errorf("batch create: unexpected body %s", created.Body)
		}
		ids = append(ids, created.JSON201.Id)
	}

	amount, blockFor := 2, "1s"
	claimed, err := client.ClaimTasksWithResponse(ctx, &tasques.ClaimTasksParams{XTASQUESWORKERID: workerID},
		tasques.Claim{Queues: []string{queue}, Amount: &amount, BlockFor: &blockFor})
	if err != nil {
		return nil, nil, fmt.Errorf("batch claim: %w", err)
	}
	if err := expect("batch claim", claimed.StatusCode(), http.StatusOK, claimed.Body); err != nil {
		return nil, nil, err
	}
	claimIDs := map[string]string{}
	if claimed.JSON200 != nil {
		for _, t := range *claimed.JSON200 {
			if t.State != tasques.Claimed || t.LastClaimed == nil || t.LastClaimed.WorkerId != workerID ||
				t.LastClaimed.ClaimId == nil || *t.LastClaimed.ClaimId == "" {
				return nil, nil, fmt.Errorf("batch claim: unexpected task %s", claimed.Body)
			}
			claimIDs[t.Id] = *t.LastClaimed.ClaimId
		}
	}
	for _, id := range ids {
		if _, ok := claimIDs[id]; !ok || len(claimIDs) != len(ids) {
			return nil, nil, fmt.Errorf("batch claim: want tasks %v, got %s", ids, claimed.Body)
		}
	}
	return ids, claimIDs, nil
}

// items checks a batch answer: one item per request item, with the wanted per-item statuses, a task for each 200.
func items(step string, status int, body []byte, result *tasques.UpdateResult,
	want []int) ([]tasques.UpdateItem, error) {
	if err := expect(step, status, http.StatusOK, body); err != nil {
		return nil, err
	}
	if result == nil || len(result.Results) != len(want) {
		return nil, fmt.Errorf("%s: want %d results, got %s", step, len(want), body)
	}
	for n, item := range result.Results {
		if item.Status != want[n] || (item.Status == http.StatusOK && item.Task == nil) {
			return nil, fmt.Errorf("%s: item %d: want status %d, got %s", step, n, want[n], body)
		}
	}
	return result.Results, nil
}

// batch does two more tasks: claimed at once, reported on with one batch call and finished with another.
func batch(ctx context.Context, client *tasques.ClientWithResponses, queue, workerID string,
	args, progress, result map[string]interface{}) ([]string, error) {
	ids, claimIDs, err := claimTwo(ctx, client, queue, workerID, args)
	if err != nil {
		return nil, err
	}

	reports := make([]tasques.TaskUpdate, len(ids))
	for n, id := range ids {
		claimID := claimIDs[id]
		reports[n] = tasques.TaskUpdate{Queue: queue, Id: id, ClaimId: &claimID, Data: &progress}
	}
	reported, err := client.ReportOnClaimedTasksWithResponse(ctx,
		&tasques.ReportOnClaimedTasksParams{XTASQUESWORKERID: workerID}, tasques.TaskUpdates{Tasks: reports})
	if err != nil {
		return nil, fmt.Errorf("batch report: %w", err)
	}
	got, err := items("batch report", reported.StatusCode(), reported.Body, reported.JSON200, []int{200, 200})
	if err != nil {
		return nil, err
	}
	for n, item := range got {
		if t := item.Task; t.Id != ids[n] || t.State != tasques.Claimed || t.LastClaimed == nil ||
			t.LastClaimed.LastReport == nil || t.LastClaimed.LastReport.Data == nil ||
			!reflect.DeepEqual(*t.LastClaimed.LastReport.Data, progress) {
			return nil, fmt.Errorf("batch report: unexpected item %d in %s", n, reported.Body)
		}
	}

	results := make([]map[string]interface{}, len(ids))
	for n := range ids {
		results[n] = map[string]interface{}{"item": float64(n), "result": result}
	}
	claimID, missing := claimIDs[ids[0]], "missing-"+ids[0]
	dones := []tasques.TaskUpdate{
		{Queue: queue, Id: ids[0], ClaimId: &claimID, Data: &results[0]},
		{Queue: queue, Id: ids[1], Data: &results[1]}, // worker check only
		{Queue: queue, Id: missing, Data: &results[0]},
	}
	done, err := client.MarkClaimedTasksDoneWithResponse(ctx,
		&tasques.MarkClaimedTasksDoneParams{XTASQUESWORKERID: workerID}, tasques.TaskUpdates{Tasks: dones})
	if err != nil {
		return nil, fmt.Errorf("batch done: %w", err)
	}
	got, err = items("batch done", done.StatusCode(), done.Body, done.JSON200, []int{200, 200, 404})
	if err != nil {
		return nil, err
	}
	for n, item := range got[:2] {
		if t := item.Task; t.Id != ids[n] || t.State != tasques.Done || t.LastClaimed == nil || t.LastClaimed.Result == nil ||
			t.LastClaimed.Result.Success == nil || !reflect.DeepEqual(*t.LastClaimed.Result.Success, results[n]) {
			return nil, fmt.Errorf("batch done: unexpected item %d in %s", n, done.Body)
		}
	}
	if item := got[2]; item.Task != nil || item.Error == nil || item.Error.Message == "" {
		return nil, fmt.Errorf("batch done: want an error for the missing task, got %s", done.Body)
	}
	return ids, nil
}

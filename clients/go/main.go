// Command smoke drives a Tasques server through the Go client that oapi-codegen generates from openapi.yaml
// into ./tasques (see scripts/gen-clients): create -> claim -> report -> done.
//
//	smoke <base-url> <queue> <worker-id> <result-json>
//
// On success it prints {"queue": ..., "id": ...} of the finished task on stdout.
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

	out, err := json.Marshal(map[string]string{"queue": queue, "id": id})
	if err != nil {
		return err
	}
	fmt.Println(string(out))
	return nil
}

// Command worker_go is the Go worker of the ciphers example: a claim loop on the client that oapi-codegen
// generates from openapi.yaml (the package ./tasques, which example_ciphers/build_go.py puts next to this file
// in a build dir; it is never committed).
//
//	worker_go [-server URL] [-queue Q ...] [-worker-id ID] [-block-for 2s] [-amount 10]
//	worker_go -vectors ../vectors.json    # print this implementation's outputs for the shared test vectors
//
// It claims from ciphers-go and ciphers (the queue either worker may take) unless -queue is given, encodes each
// task, and marks it done with {"ciphertext", "worker": "go", "worker_id"}, or failed with
// {"error_type", "message"} when its args are invalid. SIGINT/SIGTERM: finish the claim in flight (at most
// -block-for) and the tasks it returned, then exit 0; a second signal exits at once.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"tasques-example-ciphers/tasques"
)

type queueList []string

func (q *queueList) String() string     { return strings.Join(*q, ",") }
func (q *queueList) Set(v string) error { *q = append(*q, v); return nil }

func main() {
	var queues queueList
	server := flag.String("server", "http://127.0.0.1:8080", "the Tasques server")
	flag.Var(&queues, "queue", "a queue to claim from; repeat (default: ciphers-go and ciphers)")
	workerID := flag.String("worker-id", "", "this worker's X-TASQUES-WORKER-ID (default: go-HOST-PID)")
	blockFor := flag.Duration("block-for", 2*time.Second, "how long a claim waits when nothing is ready")
	amount := flag.Int("amount", 10, "the most tasks per claim")
	vectors := flag.String("vectors", "", "print the outputs for the test vectors in this file, and exit")
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	log.SetPrefix("worker_go: ")

	if *vectors != "" {
		if err := printVectors(*vectors); err != nil {
			log.Fatal(err)
		}
		return
	}
	if len(queues) == 0 {
		queues = queueList{"ciphers-go", "ciphers"}
	}
	if *workerID == "" {
		host, _ := os.Hostname()
		*workerID = fmt.Sprintf("go-%s-%d", host, os.Getpid())
	}
	if *amount < 1 || *blockFor < 0 {
		log.Fatal("-amount must be at least 1 and -block-for not negative")
	}
	// The HTTP timeout leaves room for the long poll.
	client, err := tasques.NewClientWithResponses(*server,
		tasques.WithHTTPClient(&http.Client{Timeout: *blockFor + 30*time.Second}))
	if err != nil {
		log.Fatal(err)
	}
	w := &worker{client: client, id: *workerID, queues: queues, amount: *amount, blockFor: *blockFor,
		stop: make(chan struct{})}
	go w.handleSignals()
	log.Printf("worker %s claiming from %s on %s", w.id, queues.String(), *server)
	if err := w.run(); err != nil {
		log.Fatal(err)
	}
	log.Printf("stopped")
}

type worker struct {
	client   *tasques.ClientWithResponses
	id       string
	queues   []string
	amount   int
	blockFor time.Duration
	stop     chan struct{}
}

func (w *worker) handleSignals() {
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	<-signals
	log.Printf("stopping once the claim in flight is done (a second signal exits at once)")
	close(w.stop)
	<-signals
	log.Printf("second signal: exiting now; tasks of the claim in flight time out on the server")
	os.Exit(1)
}

func (w *worker) stopping() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// errFatal: the server rejects the claims themselves (a bad queue name, wrong credentials): retrying won't help.
var errFatal = errors.New("claims rejected")

// unavailable: the server could not be reached or is overloaded; trying again later may work.
func unavailable(status int) bool {
	return status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests
}

func (w *worker) run() error {
	backoff := 500 * time.Millisecond
	blockFor := w.blockFor.String()
	for !w.stopping() {
		// Not cancelled on a signal: the server would still claim for a request we abandoned. The claim returns
		// within block_for, and whatever it returned is encoded before the loop sees the stop.
		ctx, cancel := context.WithTimeout(context.Background(), w.blockFor+30*time.Second)
		resp, err := w.client.ClaimTasksWithResponse(ctx, &tasques.ClaimTasksParams{XTASQUESWORKERID: w.id},
			tasques.Claim{Queues: w.queues, Amount: &w.amount, BlockFor: &blockFor})
		cancel()
		switch {
		case err != nil || unavailable(resp.StatusCode()):
			what := fmt.Sprint(err)
			if err == nil {
				what = fmt.Sprintf("HTTP %d: %s", resp.StatusCode(), resp.Body)
			}
			wait := time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64()))
			log.Printf("claim failed (%s); retrying in %s", what, wait.Round(time.Millisecond))
			select {
			case <-time.After(wait):
			case <-w.stop:
			}
			backoff = min(2*backoff, 10*time.Second)
			continue
		case resp.JSON200 == nil:
			return fmt.Errorf("%w: HTTP %d: %s", errFatal, resp.StatusCode(), resp.Body)
		}
		backoff = 500 * time.Millisecond
		for _, task := range *resp.JSON200 {
			w.process(task)
		}
	}
	return nil
}

func (w *worker) process(task tasques.Task) {
	args := map[string]interface{}{}
	if task.Args != nil {
		args = *task.Args
	}
	ciphertext, err := Encode(task.Kind, args)
	if err != nil {
		errorType := "CipherError"
		var cipherErr *CipherError
		if !errors.As(err, &cipherErr) {
			errorType = "Error"
		}
		log.Printf("task %s/%s (%s) failed: %s", task.Queue, task.Id, task.Kind, err)
		w.finish(task, nil, map[string]interface{}{"error_type": errorType, "message": err.Error()})
		return
	}
	log.Printf("task %s/%s (%s) encoded", task.Queue, task.Id, task.Kind)
	w.finish(task, map[string]interface{}{"ciphertext": ciphertext, "worker": "go", "worker_id": w.id}, nil)
}

// finish marks the task done (success != nil) or failed, retrying a few times while the server is unavailable.
// A task whose result cannot be delivered is timed out by the server and retried, so encoding is idempotent.
func (w *worker) finish(task tasques.Task, success, failure map[string]interface{}) {
	wait := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		var status int
		var body []byte
		var err error
		if success != nil {
			var r *tasques.MarkClaimedTaskDoneResponse
			r, err = w.client.MarkClaimedTaskDoneWithResponse(ctx, task.Queue, task.Id,
				&tasques.MarkClaimedTaskDoneParams{XTASQUESWORKERID: w.id}, tasques.Success{Data: &success})
			if err == nil {
				status, body = r.StatusCode(), r.Body
			}
		} else {
			var r *tasques.MarkClaimedTaskFailedResponse
			r, err = w.client.MarkClaimedTaskFailedWithResponse(ctx, task.Queue, task.Id,
				&tasques.MarkClaimedTaskFailedParams{XTASQUESWORKERID: w.id}, tasques.Failure{Data: &failure})
			if err == nil {
				status, body = r.StatusCode(), r.Body
			}
		}
		cancel()
		switch {
		case err == nil && status == http.StatusOK:
			return
		case err == nil && !unavailable(status):
			// 403/404/409: the claim was lost (timed out and reaped, or finished already); leave the task alone.
			log.Printf("task %s/%s: HTTP %d: %s", task.Queue, task.Id, status, body)
			return
		case attempt == 5:
			log.Printf("task %s/%s: result not delivered (%v, HTTP %d); the server will time the claim out",
				task.Queue, task.Id, err, status)
			return
		}
		time.Sleep(wait)
		wait *= 2
	}
}

// printVectors reads {"vectors": [{"kind", "args", ...}]} and prints [{"ciphertext"} or {"error"}, ...] in order.
func printVectors(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var file struct {
		Vectors []struct {
			Kind string                 `json:"kind"`
			Args map[string]interface{} `json:"args"`
		} `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	outputs := make([]map[string]string, 0, len(file.Vectors))
	for _, v := range file.Vectors {
		if ciphertext, err := Encode(v.Kind, v.Args); err != nil {
			outputs = append(outputs, map[string]string{"error": err.Error()})
		} else {
			outputs = append(outputs, map[string]string{"ciphertext": ciphertext})
		}
	}
	out, err := json.Marshal(outputs)
	if err != nil {
		return err
	}
	fmt.Println(string(out))
	return nil
}

package execution_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circlegate/circlegate/execution"
	"github.com/circlegate/circlegate/execution/queuetest"
)

func TestMemoryQueue(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, capacity int) execution.Queue {
		q, err := execution.NewMemoryQueue(execution.MemoryQueueConfig{Capacity: capacity})
		if err != nil {
			t.Fatal(err)
		}
		return q
	})
}

// TestMemoryQueueTurns checks how the embedded queue's workers share the load: one
// batch in flight while batches are quick (so they grow with the load and share
// syncs), and a batch stuck past the long-batch threshold does not hold up the jobs
// of other contexts.
func TestMemoryQueueTurns(t *testing.T) {
	q, err := execution.NewMemoryQueue(execution.MemoryQueueConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var inFlight, most atomic.Int32
	stuck := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = q.Run(ctx, 4, func(_ context.Context, jobs []*execution.Job) []execution.Outcome {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			out := make([]execution.Outcome, len(jobs))
			for i, j := range jobs {
				if j.Method == "stuck" {
					<-stuck
				}
				runtime.Gosched()
				out[i] = execution.Outcome{Result: json.RawMessage(`1`)}
			}
			return out
		})
	}()
	t.Cleanup(func() { cancel(); _ = q.Close(); <-done })

	submit := func(contextID, method string) error {
		j := &execution.Job{ID: contextID + method + time.Now().String(), Kind: execution.JobMutate, Tenant: "t",
			ContextID: contextID, Method: method, Time: time.Now(), Deadline: time.Now().Add(10 * time.Second)}
		_, err := q.Submit(context.Background(), j)
		return err
	}
	var wg sync.WaitGroup
	for c := range 32 {
		wg.Go(func() {
			for range 20 {
				if err := submit(fmt.Sprint("c", c), "m"); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if m := most.Load(); m != 1 {
		t.Fatalf("%d batches ran at once under a quick load; want 1 at a time", m)
	}

	stuckDone := make(chan error, 1)
	go func() { stuckDone <- submit("slow", "stuck") }()
	for inFlight.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	other := make(chan error, 1)
	go func() { other <- submit("other", "m") }()
	select {
	case err := <-other:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a job of another context waited behind a stuck batch")
	}
	close(stuck)
	if err := <-stuckDone; err != nil {
		t.Fatal(err)
	}
}

// TestMemoryQueueOneJobPerContext: a batch takes one job of each context, the
// context's next jobs go in the next batches, in order, so that a batch commits in
// one round.
func TestMemoryQueueOneJobPerContext(t *testing.T) {
	q, err := execution.NewMemoryQueue(execution.MemoryQueueConfig{})
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	var mu sync.Mutex
	var batches [][]string
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = q.Run(ctx, 1, func(_ context.Context, jobs []*execution.Job) []execution.Outcome {
			ids := make([]string, len(jobs))
			for i, j := range jobs {
				ids[i] = j.ID
			}
			mu.Lock()
			batches = append(batches, ids)
			first := len(batches) == 1
			mu.Unlock()
			if first {
				<-gate
			}
			return make([]execution.Outcome, len(jobs))
		})
	}()
	t.Cleanup(func() { cancel(); _ = q.Close(); <-done })

	var wg sync.WaitGroup
	submit := func(contextID, id string, queued int) {
		wg.Go(func() {
			j := &execution.Job{ID: id, Kind: execution.JobMutate, Tenant: "t", ContextID: contextID,
				Method: "m", Time: time.Now(), Deadline: time.Now().Add(10 * time.Second)}
			if _, err := q.Submit(context.Background(), j); err != nil {
				t.Error(err)
			}
		})
		for q.Len() < queued { // submitted in this order
			time.Sleep(time.Millisecond)
		}
	}
	submit("A", "a0", 1)
	for {
		mu.Lock()
		n := len(batches)
		mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	submit("A", "a1", 2)
	submit("A", "a2", 3)
	submit("B", "b0", 4)
	close(gate)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	var order []string
	for _, b := range batches {
		contexts := map[byte]bool{}
		for _, id := range b {
			if contexts[id[0]] {
				t.Fatalf("batches %q: one holds two jobs of a context", batches)
			}
			contexts[id[0]] = true
			if id[0] == 'a' {
				order = append(order, id)
			}
		}
	}
	if fmt.Sprint(order) != "[a0 a1 a2]" || len(batches) != 3 {
		t.Fatalf("batches %q: want 3, context A's jobs in order a0 a1 a2", batches)
	}
}

// TestMemoryQueueRoomBeforeReply: a batch's room in the queue is free by the time
// its callers have their outcomes, so a caller that submits job after job into a
// queue of capacity 1 is never refused as overloaded, even when the worker stalls
// right after replying (as a preempted one does).
func TestMemoryQueueRoomBeforeReply(t *testing.T) {
	q, err := execution.NewMemoryQueue(execution.MemoryQueueConfig{Capacity: 1})
	if err != nil {
		t.Fatal(err)
	}
	execution.SetRepliedHook(t, func() { time.Sleep(5 * time.Millisecond) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = q.Run(ctx, 1, func(_ context.Context, jobs []*execution.Job) []execution.Outcome {
			return execution.PerContext(jobs, func(*execution.Job) execution.Outcome { return execution.Outcome{Result: json.RawMessage(`1`)} })
		})
	}()
	defer func() { cancel(); <-done }()
	for i := range 20 {
		j := &execution.Job{ID: fmt.Sprint("j", i), Kind: execution.JobMutate, Tenant: "t", ContextID: "c", Method: "m",
			Time: time.Now(), Deadline: time.Now().Add(10 * time.Second)}
		if _, err := q.Submit(context.Background(), j); err != nil {
			t.Fatalf("job %d, submitted after the previous one returned: %v", i, err)
		}
	}
}

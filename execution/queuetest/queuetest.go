// Package queuetest is the conformance suite every execution.Queue backend passes.
package queuetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/execution"
	"github.com/circlegate/circlegate/internal/testutil"
)

// Opener returns a fresh, empty queue that holds at most capacity jobs.
type Opener func(t *testing.T, capacity int) execution.Queue

// Run runs the suite.
func Run(t *testing.T, open Opener) {
	t.Run("results", func(t *testing.T) { testResults(t, open) })
	t.Run("serial per context, parallel across", func(t *testing.T) { testOrdering(t, open) })
	t.Run("bounded", func(t *testing.T) { testBounded(t, open) })
	t.Run("deadline", func(t *testing.T) { testDeadline(t, open) })
	t.Run("late", func(t *testing.T) { testLate(t, open) })
	t.Run("close", func(t *testing.T) { testClose(t, open) })
	t.Run("status", func(t *testing.T) { testStatus(t, open) })
}

var seq atomic.Uint64

func job(contextID string) *execution.Job {
	return &execution.Job{
		ID: "job-" + strconv.FormatUint(seq.Add(1), 10), Kind: execution.JobMutate,
		Tenant: "t", ContextID: contextID, Method: "m", Caller: "c",
		Time: time.Now(), Deadline: time.Now().Add(10 * time.Second),
	}
}

// serve runs q with h until the test ends.
func serve(t *testing.T, q execution.Queue, workers int, h execution.Handler) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = q.Run(ctx, workers, h) }()
	t.Cleanup(func() { cancel(); _ = q.Close(); <-done })
}

// each runs f per job the way handlers must: serial per context, parallel across.
func each(jobs []*execution.Job, f func(*execution.Job) execution.Outcome) []execution.Outcome {
	return execution.PerContext(jobs, f)
}

func testResults(t *testing.T, open Opener) {
	q := open(t, 100)
	serve(t, q, 2, func(_ context.Context, jobs []*execution.Job) []execution.Outcome {
		return each(jobs, func(j *execution.Job) execution.Outcome {
			if j.Method == "fail" {
				return execution.Outcome{Err: errs.E(errs.Execution, "boom in %s", j.ID)}
			}
			r, _ := json.Marshal(map[string]string{"id": j.ID, "args": string(j.Args)})
			return execution.Outcome{Result: r}
		})
	})
	ctx := context.Background()
	j := job("c1")
	j.Args = json.RawMessage(`{"x":1}`)
	res, err := q.Submit(ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal(res, &got); err != nil || got["id"] != j.ID || got["args"] != `{"x":1}` {
		t.Fatalf("result %s, %v", res, err)
	}
	j = job("c1")
	j.Method = "fail"
	_, err = q.Submit(ctx, j)
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.Execution || e.Message != "boom in "+j.ID {
		t.Fatalf("error = %#v, want execution error with its message", err)
	}
}

func testOrdering(t *testing.T, open Opener) {
	q := open(t, 1000)
	var mu sync.Mutex
	inflight := map[string]int{}
	order := map[string][]string{}
	bRan := make(chan struct{})
	var bOnce sync.Once
	var failures atomic.Value
	serve(t, q, 4, func(_ context.Context, jobs []*execution.Job) []execution.Outcome {
		return each(jobs, func(j *execution.Job) execution.Outcome {
			mu.Lock()
			inflight[j.ContextID]++
			if inflight[j.ContextID] > 1 {
				failures.Store(fmt.Sprintf("two jobs of %s ran at once", j.ContextID))
			}
			order[j.ContextID] = append(order[j.ContextID], string(j.Args))
			mu.Unlock()
			if j.ContextID == "a" && string(j.Args) == "0" {
				// Context a waits for context b: only possible if they run in parallel.
				select {
				case <-bRan:
				case <-time.After(5 * time.Second):
					failures.Store("context b did not run while a was running")
				}
			}
			if j.ContextID == "b" {
				bOnce.Do(func() { close(bRan) })
			}
			mu.Lock()
			inflight[j.ContextID]--
			mu.Unlock()
			return execution.Outcome{Result: json.RawMessage(`null`)}
		})
	})
	var wg sync.WaitGroup
	for _, c := range []string{"a", "b", "c", "d"} {
		wg.Go(func() {
			// Each context's jobs come from several goroutines at once; within one
			// submitter they are sequential, so their order must hold.
			var inner sync.WaitGroup
			for s := range 4 {
				inner.Go(func() {
					for i := range 25 {
						j := job(c)
						j.Args = json.RawMessage(strconv.Itoa(s*1000 + i))
						if c == "a" && s == 0 && i == 0 {
							j.Args = json.RawMessage("0")
						}
						if _, err := q.Submit(context.Background(), j); err != nil {
							failures.Store(err.Error())
						}
					}
				})
			}
			inner.Wait()
		})
	}
	wg.Wait()
	if f := failures.Load(); f != nil {
		t.Fatal(f)
	}
	for c, seen := range order {
		if len(seen) != 100 {
			t.Fatalf("context %s ran %d jobs, want 100", c, len(seen))
		}
		last := map[int]int{}
		for _, a := range seen {
			n, _ := strconv.Atoi(a)
			s, i := n/1000, n%1000
			if prev, ok := last[s]; ok && i <= prev {
				t.Fatalf("context %s: submitter %d's job %d ran after %d", c, s, i, prev)
			}
			last[s] = i
		}
	}
}

func testBounded(t *testing.T, open Opener) {
	q := open(t, 3)
	release := make(chan struct{})
	serve(t, q, 1, func(_ context.Context, jobs []*execution.Job) []execution.Outcome {
		<-release
		return each(jobs, func(*execution.Job) execution.Outcome { return execution.Outcome{Result: json.RawMessage(`1`)} })
	})
	results := make(chan error, 3)
	for range 3 {
		go func() { _, err := q.Submit(context.Background(), job("x")); results <- err }()
	}
	deadline := time.Now().Add(5 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, err = q.Submit(ctx, job("y"))
		cancel()
		if errs.KindOf(err) == errs.Overloaded {
			break
		}
	}
	if errs.KindOf(err) != errs.Overloaded {
		t.Fatalf("submit past capacity: %v, want overloaded", err)
	}
	close(release)
	// Probes that were accepted before the queue filled may have taken a slot from a
	// first-round job, which is then refused in the same way; nothing else may fail.
	for range 3 {
		if err := <-results; err != nil && errs.KindOf(err) != errs.Overloaded {
			t.Fatal(err)
		}
	}
}

func testDeadline(t *testing.T, open Opener) {
	q := open(t, 10)
	var ran atomic.Int32
	serve(t, q, 1, func(_ context.Context, jobs []*execution.Job) []execution.Outcome {
		ran.Add(int32(len(jobs)))
		return each(jobs, func(*execution.Job) execution.Outcome { return execution.Outcome{Result: json.RawMessage(`1`)} })
	})
	j := job("z")
	j.Deadline = time.Now().Add(-time.Second)
	if _, err := q.Submit(context.Background(), j); errs.KindOf(err) != errs.Overloaded {
		t.Fatalf("expired job: %v, want overloaded", err)
	}
	if ran.Load() != 0 {
		t.Fatal("an expired job ran")
	}
}

// testLate: Submit waits no longer than the job's deadline, whatever the worker does,
// and without a deadline on its context.
func testLate(t *testing.T, open Opener) {
	q := open(t, 10)
	release := make(chan struct{})
	defer close(release)
	serve(t, q, 1, func(_ context.Context, jobs []*execution.Job) []execution.Outcome {
		<-release // a stuck commit
		return each(jobs, func(*execution.Job) execution.Outcome { return execution.Outcome{} })
	})
	j := job("late")
	j.Deadline = time.Now().Add(300 * time.Millisecond)
	start := time.Now()
	_, err := q.Submit(context.Background(), j)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("late job: %v, want context.DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Submit returned %v after the job's deadline", took)
	}
}

func testClose(t *testing.T, open Opener) {
	q := open(t, 10)
	_ = q.Close()
	if _, err := q.Submit(context.Background(), job("w")); errs.KindOf(err) != errs.Overloaded {
		t.Fatalf("submit after close: %v, want overloaded", err)
	}
}

// testStatus: a job's record is queued while it runs, then done with its result or
// failed with its error; an unknown id is NotFound.
func testStatus(t *testing.T, open Opener) {
	q := open(t, 10)
	release := make(chan struct{})
	serve(t, q, 1, func(_ context.Context, jobs []*execution.Job) []execution.Outcome {
		return each(jobs, func(j *execution.Job) execution.Outcome {
			if j.Method == "wait" {
				<-release
			}
			if j.Method == "fail" {
				return execution.Outcome{Err: errs.Param("x", "bad x in %s", j.ID)}
			}
			return execution.Outcome{Result: json.RawMessage(`{"ok":true}`)}
		})
	})
	ctx := context.Background()
	if _, err := q.Status(ctx, "no-such-job"); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("Status of an unknown job: %v, want not found", err)
	}
	waiting := job("s1")
	waiting.Method = "wait"
	done := make(chan error, 1)
	go func() { _, err := q.Submit(ctx, waiting); done <- err }()
	testutil.CheckFor(t, 10*time.Second, func() error {
		r, err := q.Status(ctx, waiting.ID)
		if err != nil || r.Status != execution.JobQueued {
			return fmt.Errorf("status of a running job: %+v, %v", r, err)
		}
		if r.Tenant != waiting.Tenant || r.Caller != waiting.Caller || r.ContextID != "s1" || r.Kind != execution.JobMutate {
			return fmt.Errorf("record %+v does not describe the job", r)
		}
		return nil
	})
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r, err := q.Status(ctx, waiting.ID)
	if err != nil || r.Status != execution.JobDone || string(r.Result) != `{"ok":true}` || r.FinishedAt.IsZero() {
		t.Fatalf("status of a finished job: %+v, %v", r, err)
	}
	failing := job("s1")
	failing.Method = "fail"
	if _, err := q.Submit(ctx, failing); errs.KindOf(err) != errs.InvalidParams {
		t.Fatalf("failing job: %v", err)
	}
	r, err = q.Status(ctx, failing.ID)
	var e *errs.Error
	if err != nil || r.Status != execution.JobFailed || !errors.As(r.Err, &e) || e.Param != "x" ||
		e.Message != "invalid param x: bad x in "+failing.ID || r.Result != nil {
		t.Fatalf("status of a failed job: %+v (err %#v), %v", r, r.Err, err)
	}
}

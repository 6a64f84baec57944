package execution_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/execution"
)

// holdLoop keeps an instance of a busy with hold calls until the function it
// returns is called (or the test ends), and reports any failure.
func holdLoop(t *testing.T, e *execution.Engine, a app) (stop func()) {
	var stopped atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stopped.Load() {
			if _, err := e.Run(context.Background(), call(a, "hold", "", nil)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	stop = func() {
		stopped.Store(true)
		<-done
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond for up to a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after a minute", what)
		}
	}
}

// TestPoolGrowsBesideCallers: a call that finds every instance busy takes the first
// one released instead of waiting for a new one to start, and the new one starts
// in the background and joins the pool.
func TestPoolGrowsBesideCallers(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{PoolSize: 2, Limits: execution.Limits{Timeout: time.Minute}})
	slow := example(t, "startslow.wat")
	mustRun(t, e, call(slow, "get", "", nil), nil) // the first instance starts in the call
	stop := holdLoop(t, e, slow)
	// A get that comes while hold runs (between two holds it may find the instance
	// idle: then it tries again) waits for the instance, and a second one starts.
	for tries := 0; ; tries++ {
		waitFor(t, "busy instance", func() bool { _, idle, _ := e.PoolState("tenant-a", slow.id); return idle == 0 })
		mustRun(t, e, call(slow, "get", "", nil), nil)
		// It returned while the second instance was still starting (counting to 400
		// million takes far longer than hold's 20 million).
		if live, _, starting := e.PoolState("tenant-a", slow.id); starting {
			if live != 2 {
				t.Fatalf("%d instances alive, want 2: one busy, one starting", live)
			}
			break
		}
		if tries == 20 {
			t.Fatal("20 gets never found the instance busy")
		}
	}
	stop()
	waitFor(t, "second instance", func() bool { live, idle, _ := e.PoolState("tenant-a", slow.id); return live == 2 && idle == 2 })
	if s := e.Stats(); s.Instantiated != 2 || s.Discarded != 0 {
		t.Fatalf("stats %+v, want 2 instances started, none discarded", s)
	}
}

// TestPoolWaiters: with the pool full, a waiting call that gives up leaves nothing
// behind, and a call waiting when the busy instance traps starts its own.
func TestPoolWaiters(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{PoolSize: 1, Limits: execution.Limits{Timeout: time.Minute}})
	slow := example(t, "startslow.wat")
	mustRun(t, e, call(slow, "get", "", nil), nil)

	stop := holdLoop(t, e, slow)
	waitFor(t, "busy instance", func() bool { _, idle, _ := e.PoolState("tenant-a", slow.id); return idle == 0 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	_, err := e.Run(ctx, call(slow, "get", "", nil))
	cancel()
	if errs.KindOf(err) != errs.Overloaded {
		t.Fatalf("a get that gave up waiting: %v, want overloaded", err)
	}
	stop()
	mustRun(t, e, call(slow, "get", "", nil), nil)
	if live, idle, starting := e.PoolState("tenant-a", slow.id); live != 1 || idle != 1 || starting {
		t.Fatalf("after the waiter gave up: %d alive, %d idle, starting %v; want the one instance idle", live, idle, starting)
	}

	trapped := make(chan error, 1)
	go func() {
		_, err := e.Run(context.Background(), call(slow, "holdtrap", "", nil))
		trapped <- err
	}()
	waitFor(t, "busy instance", func() bool { _, idle, _ := e.PoolState("tenant-a", slow.id); return idle == 0 })
	mustRun(t, e, call(slow, "get", "", nil), nil) // waits, is woken by the trap, starts its own
	if err := <-trapped; errs.KindOf(err) != errs.Execution {
		t.Fatalf("holdtrap: %v, want an execution error", err)
	}
	if s := e.Stats(); s.Instantiated != 2 || s.Discarded != 1 {
		t.Fatalf("stats %+v, want the trapped instance discarded and a second started", s)
	}
}

package execution_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/execution"
)

// waitFor polls cond for up to a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after a minute", what)
		}
	}
}

// busy runs method on a's pool in the background until it has taken the pool's
// only instance, and returns the call's error when it ends.
func busy(t *testing.T, e *execution.Engine, a app, method string) <-chan error {
	t.Helper()
	done, finished := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(finished)
		_, err := e.Run(context.Background(), call(a, method, "", nil))
		done <- err
	}()
	t.Cleanup(func() { <-finished })
	waitFor(t, "busy instance", func() bool { _, idle, _, _ := e.PoolState("tenant-a", a.id); return idle == 0 })
	return done
}

// holdStarts holds every start in the background until the function it returns is
// called, or the test ends (before its engine closes, which waits for the starts).
func holdStarts(t *testing.T) (release func()) {
	started := make(chan struct{})
	execution.SetGrowHook(t, func() error { <-started; return nil })
	var once sync.Once
	release = func() { once.Do(func() { close(started) }) }
	t.Cleanup(release)
	return release
}

// TestPoolGrowsBesideCallers: a call that finds every instance busy takes the first
// one released instead of waiting for a new one to start, and the new one starts
// in the background and joins the pool.
func TestPoolGrowsBesideCallers(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{PoolSize: 2, Limits: execution.Limits{Timeout: time.Minute}})
	release := holdStarts(t)
	a := example(t, "pool.wat")
	mustRun(t, e, call(a, "get", "", nil), nil) // the first instance starts in the call
	held := busy(t, e, a, "hold")
	mustRun(t, e, call(a, "get", "", nil), nil) // waits for hold's instance: the new one cannot start
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if live, _, starting, _ := e.PoolState("tenant-a", a.id); !starting || live != 2 {
		t.Fatalf("after the get: %d instances alive, starting %v; want the second still starting", live, starting)
	}
	release()
	waitFor(t, "second instance", func() bool { live, idle, _, _ := e.PoolState("tenant-a", a.id); return live == 2 && idle == 2 })
	if s := e.Stats(); s.Instantiated != 2 || s.Discarded != 0 {
		t.Fatalf("stats %+v, want 2 instances started, none discarded", s)
	}
}

// TestPoolWaiterGivesUp: a call that stops waiting leaves the queue, and the
// instance started for it joins the pool.
func TestPoolWaiterGivesUp(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{PoolSize: 2, Limits: execution.Limits{Timeout: time.Minute}})
	release := holdStarts(t)
	a := example(t, "pool.wat")
	mustRun(t, e, call(a, "get", "", nil), nil)
	held := busy(t, e, a, "hold")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	_, err := e.Run(ctx, call(a, "get", "", nil))
	cancel()
	if errs.KindOf(err) != errs.Overloaded {
		t.Fatalf("a get that gave up waiting: %v, want overloaded", err)
	}
	// It returned at its deadline, with hold's instance still busy (hold counts
	// for far longer) and the start still held.
	if _, idle, starting, waiting := e.PoolState("tenant-a", a.id); waiting != 0 || !starting || idle != 0 {
		t.Fatalf("after the get gave up: %d waiting, starting %v, %d idle; want none waiting, the start going on, hold's instance busy", waiting, starting, idle)
	}
	release()
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both instances idle", func() bool { live, idle, _, _ := e.PoolState("tenant-a", a.id); return live == 2 && idle == 2 })
}

// TestPoolStartFails: when the start in the background fails, the waiting call is
// not failed with it and no other start follows at once; when the busy instance
// then traps, the call starts its own.
func TestPoolStartFails(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{PoolSize: 2, Limits: execution.Limits{Timeout: time.Minute}})
	var mu sync.Mutex
	starts := 0
	execution.SetGrowHook(t, func() error {
		mu.Lock()
		defer mu.Unlock()
		starts++
		return errors.New("no start")
	})
	a := example(t, "pool.wat")
	mustRun(t, e, call(a, "get", "", nil), nil)
	trapped := busy(t, e, a, "holdtrap")
	mustRun(t, e, call(a, "get", "", nil), nil) // woken by the failed start, then by the trap
	if err := <-trapped; errs.KindOf(err) != errs.Execution {
		t.Fatalf("holdtrap: %v, want an execution error", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if starts != 1 {
		t.Fatalf("%d starts in the background, want 1: a failed start is not retried before an instance comes back", starts)
	}
	if live, idle, starting, waiting := e.PoolState("tenant-a", a.id); live != 1 || idle != 1 || starting || waiting != 0 {
		t.Fatalf("pool: %d alive, %d idle, starting %v, %d waiting; want the get's own instance idle", live, idle, starting, waiting)
	}
	if s := e.Stats(); s.Instantiated != 2 || s.Discarded != 1 {
		t.Fatalf("stats %+v, want the trapped instance discarded and a second started by the get", s)
	}
}

// TestPoolMemoryTooSmall: a call whose memory_pages cannot hold the module fails
// at once, even while every instance is busy.
func TestPoolMemoryTooSmall(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{PoolSize: 2, Limits: execution.Limits{Timeout: time.Minute}})
	a := example(t, "pool.wat")
	mustRun(t, e, call(a, "get", "", nil), nil)
	held := busy(t, e, a, "hold")
	c := call(a, "get", "", nil)
	c.Limits = &execution.Limits{MemoryPages: 1}
	_, err := e.Run(context.Background(), c)
	if errs.KindOf(err) != errs.Execution || !strings.Contains(err.Error(), "pages of memory at start") {
		t.Fatalf("a get with too little memory: %v", err)
	}
	if _, _, starting, waiting := e.PoolState("tenant-a", a.id); starting || waiting != 0 {
		t.Fatalf("the refused get left starting %v, %d waiting", starting, waiting)
	}
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if live, idle, _, _ := e.PoolState("tenant-a", a.id); live != 1 || idle != 1 || e.Stats().Instantiated != 1 {
		t.Fatalf("pool: %d alive, %d idle, %d started; want hold's instance idle and no other", live, idle, e.Stats().Instantiated)
	}
}

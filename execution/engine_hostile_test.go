package execution_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/execution"
)

// TestHostile runs every misbehaviour of the hostile guests. Each call must fail
// with the right kind and a clear message, return no writes, discard its instance,
// and leave the engine serving other calls.
func TestHostile(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{})
	hostile, probe, counter := example(t, "hostile.wat"), example(t, "goprobe"), example(t, "counter")
	fast := &execution.Limits{Timeout: 300 * time.Millisecond}
	for _, tc := range []struct {
		app      app
		method   string
		limits   *execution.Limits
		readOnly bool
		kind     errs.Kind
		want     string
	}{
		{hostile, "loop", fast, false, errs.Overloaded, "execution timed out after 300ms"},
		{hostile, "fanout", fast, false, errs.Overloaded, "execution timed out after 300ms"},
		{hostile, "fill_loop", fast, false, errs.Overloaded, "execution timed out after 300ms"},
		{probe, "spin", fast, false, errs.Overloaded, "execution timed out after 300ms"},
		{hostile, "grow", &execution.Limits{MemoryPages: 64}, false, errs.Execution, "memory limit exceeded: memory_pages is 64 (4 MiB)"},
		{probe, "oom", &execution.Limits{MemoryPages: 256}, false, errs.Execution, "memory limit exceeded: memory_pages is 256 (16 MiB)"},
		{hostile, "trap", nil, false, errs.Execution, "app trapped: wasm error: unreachable"},
		{hostile, "recurse", &execution.Limits{Timeout: 20 * time.Second}, false, errs.Execution, "app trapped: stack overflow"},
		{hostile, "panic", nil, false, errs.Execution, "app failed: insufficient funds"},
		{hostile, "exit", nil, false, errs.Execution, "app exited with code 3"},
		{probe, "gopanic", nil, false, errs.Execution, "app trapped: panic: assignment to entry in nil map"},
		{probe, "sdkpanic", nil, false, errs.Execution, "app failed: panic: boom"},
		{probe, "fail", nil, false, errs.Execution, "app failed: not enough coins"},
		{hostile, "many_writes", nil, false, errs.Execution, "storage_write: the call writes more than max_writes (1000) keys"},
		{hostile, "big_value", nil, false, errs.Execution, "storage_write: value is 2097152 bytes, over max_value_bytes (1048576)"},
		{hostile, "big_key", nil, false, errs.Execution, "storage_write: key is 2048 bytes, over max_key_bytes (1024)"},
		{hostile, "many_events", nil, false, errs.Execution, "emit: the call emits more than max_events (100) events"},
		{hostile, "big_event", nil, false, errs.Execution, "emit: event is 70004 bytes, over max_event_bytes (65536)"},
		{hostile, "bad_kind", nil, false, errs.Execution, `emit: kind "StateMutation" is invalid`},
		{hostile, "big_output", nil, false, errs.Execution, "value_return: output is 2097152 bytes, over max_output_bytes (1048576)"},
		{hostile, "bad_json", nil, false, errs.Execution, "value_return: output is not valid JSON"},
		{hostile, "oob_key", nil, false, errs.Execution, "storage_read: memory range [4294967040, 4294967140) is out of bounds (memory is 2621440 bytes)"},
		{hostile, "oob_len", nil, false, errs.Execution, "log_utf8: memory range [16, 4294967311) is out of bounds"},
		{hostile, "oob_register", nil, false, errs.Execution, "read_register: memory range [2621439, 2621455) is out of bounds"},
		{hostile, "short_register", nil, false, errs.Execution, "read_register: register 0 holds 9 bytes, the buffer only 8"},
		{hostile, "write_then_trap", nil, false, errs.Execution, "app trapped: wasm error: unreachable"},
		{hostile, "write", nil, true, errs.Execution, "storage_write: not allowed in a query (the call is read-only)"},
		{hostile, "emit", nil, true, errs.Execution, "emit: not allowed in a query (the call is read-only)"},
	} {
		t.Run(tc.method, func(t *testing.T) {
			st := newState()
			before := e.Stats()
			c := call(tc.app, tc.method, `{"pad":1}`, st)
			c.Limits, c.ReadOnly = tc.limits, tc.readOnly
			start := time.Now()
			res, err := e.Run(context.Background(), c)
			if err == nil {
				t.Fatalf("succeeded: %+v", res)
			}
			if errs.KindOf(err) != tc.kind || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v (%s), want %s containing %q", err, errs.KindOf(err), tc.kind, tc.want)
			}
			if res.Writes != nil || res.Events != nil || res.Output != nil {
				t.Fatalf("a failed call returned %+v", res)
			}
			if after := e.Stats(); after.Discarded != before.Discarded+1 {
				t.Fatalf("instance not discarded: %+v -> %+v", before, after)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Fatalf("took %v", d)
			}
			// The engine carries on: the same module on a fresh instance, and another app.
			if tc.app.id == hostile.id {
				c := call(hostile, "ok", "", st)
				mustRun(t, e, c, nil)
			}
			mustRun(t, e, call(counter, "increment", "", st), st)
			if v, _, _ := st.Get([]byte("count")); string(v) != "1" || st.len() != 1 {
				t.Fatalf("state after the failed call and one increment: %v", st.m)
			}
		})
	}
}

// TestGuestYieldsToGC: a guest that runs for long leaves its native code often
// enough for the Go runtime to stop the world: a garbage collection finishes while
// it spins, in every way of spinning.
func TestGuestYieldsToGC(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{})
	hostile, probe := example(t, "hostile.wat"), example(t, "goprobe")
	for _, tc := range []struct {
		app    app
		method string
	}{{hostile, "loop"}, {hostile, "fanout"}, {hostile, "fill_loop"}, {probe, "spin"}} {
		t.Run(tc.method, func(t *testing.T) {
			c := call(tc.app, tc.method, "", newState())
			c.Limits = &execution.Limits{Timeout: 10 * time.Second}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				_, err := e.Run(ctx, c)
				done <- err
			}()
			time.Sleep(200 * time.Millisecond) // the guest spins by now
			start := time.Now()
			runtime.GC()
			took := time.Since(start)
			cancel()
			if err := <-done; !errs.Is(err, errs.Overloaded) || !strings.Contains(err.Error(), "canceled") {
				t.Fatalf("err = %v, want canceled", err)
			}
			if took > 2*time.Second {
				t.Fatalf("a GC took %v while the guest ran", took)
			}
		})
	}
}

// TestHostileStart: a module that misbehaves while it starts fails the call.
func TestHostileStart(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{})
	for _, tc := range []struct {
		file string
		kind errs.Kind
		want string
	}{
		{"startloop.wat", errs.Overloaded, "app failed to start: execution timed out after 300ms"},
		{"starttrap.wat", errs.Execution, "app failed to start: log_utf8: called while the module starts up"},
	} {
		c := call(example(t, tc.file), "get", "", nil)
		c.Limits = &execution.Limits{Timeout: 300 * time.Millisecond}
		if _, err := e.Run(context.Background(), c); errs.KindOf(err) != tc.kind || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %s containing %q", tc.file, err, tc.kind, tc.want)
		}
	}
	mustRun(t, e, call(example(t, "counter"), "get", "", nil), nil)
}

func TestLogFlood(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{})
	res := mustRun(t, e, call(example(t, "hostile.wat"), "log_flood", "", nil), nil)
	if len(res.Logs) != 100 || res.Dropped != 50 || res.Logs[0] != "tick" {
		t.Fatalf("logs %d, dropped %d", len(res.Logs), res.Dropped)
	}
}

func TestReadOnlyReads(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{})
	st := newState()
	st.m["count"] = []byte("41")
	c := call(example(t, "counter"), "get", "", st)
	c.ReadOnly = true
	wantJSON(t, mustRun(t, e, c, nil).Output, `{"value":41}`)
}

// TestContextDeadline: the caller's deadline stops a call before Limits.Timeout.
func TestContextDeadline(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.Run(ctx, call(example(t, "hostile.wat"), "loop", "", nil))
	if !errs.Is(err, errs.Overloaded) || time.Since(start) > 1500*time.Millisecond {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	if _, err := e.Run(ctx, call(example(t, "goprobe"), "spin", "", nil)); !errs.Is(err, errs.Overloaded) || !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("canceled: %v", err)
	}
}

// TestCallDeadline: Call.Deadline stops a call before Limits.Timeout, as a job's
// deadline does on a worker, and says so.
func TestCallDeadline(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{})
	c := call(example(t, "goprobe"), "spin", "", nil)
	c.Deadline = time.Now().Add(200 * time.Millisecond)
	start := time.Now()
	_, err := e.Run(context.Background(), c)
	if !errs.Is(err, errs.Overloaded) || !strings.Contains(err.Error(), "stopped at the call's deadline") {
		t.Fatalf("err = %v", err)
	}
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Fatalf("stopped after %v", took)
	}
	c.Deadline = time.Now().Add(time.Hour) // later than the time limit: the limit counts
	c.Limits = &execution.Limits{Timeout: 200 * time.Millisecond}
	if _, err := e.Run(context.Background(), c); !strings.Contains(err.Error(), "timed out after 200ms") {
		t.Fatalf("err = %v", err)
	}
}

// TestParentWatchedAcrossCalls: an instance keeps watching the cancellation of the
// context its calls share (a queue worker's) from call to call, and stops watching a
// context once a call comes with another.
func TestParentWatchedAcrossCalls(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{})
	probe := example(t, "goprobe")
	a, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	for range 3 { // one pooled instance serves them all
		if _, err := e.Run(a, call(probe, "observe", "", nil)); err != nil {
			t.Fatal(err)
		}
	}
	time.AfterFunc(100*time.Millisecond, cancelA)
	if _, err := e.Run(a, call(probe, "spin", "", nil)); !strings.Contains(fmt.Sprint(err), "execution canceled") {
		t.Fatalf("spin under a canceled context: %v", err)
	}

	b, cancelB := context.WithCancel(context.Background())
	defer cancelB()
	if _, err := e.Run(b, call(probe, "observe", "", nil)); err != nil {
		t.Fatalf("a call after another context was canceled: %v", err)
	}
	c, cancelC := context.WithCancel(context.Background())
	defer cancelC()
	if _, err := e.Run(c, call(probe, "observe", "", nil)); err != nil { // the instance leaves b for c
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, cancelB)
	spin := call(probe, "spin", "", nil)
	spin.Limits = &execution.Limits{Timeout: 400 * time.Millisecond}
	if _, err := e.Run(c, spin); !strings.Contains(fmt.Sprint(err), "timed out after 400ms") {
		t.Fatalf("a context no call uses any more stopped a call: %v", err)
	}

	// A context canceled while its instance waits in the pool spoils that instance's
	// engine context; the next call, on another context, gets a fresh one whose time
	// limit still stops a spinning guest.
	d, cancelD := context.WithCancel(context.Background())
	if _, err := e.Run(d, call(probe, "observe", "", nil)); err != nil {
		t.Fatal(err)
	}
	cancelD()
	time.Sleep(20 * time.Millisecond) // the hook runs on a goroutine of its own
	done := make(chan error, 1)
	go func() {
		_, err := e.Run(context.Background(), spin)
		done <- err
	}()
	select {
	case err := <-done:
		if !strings.Contains(fmt.Sprint(err), "timed out after 400ms") {
			t.Fatalf("a call after an idle instance's context was canceled: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a spinning guest was not stopped at its time limit")
	}
}

// TestDefaultTimeout runs a Go guest that spins with the default limits.
func TestDefaultTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 2s")
	}
	e := newEngine(t, execution.EngineConfig{})
	_, err := e.Run(context.Background(), call(example(t, "goprobe"), "spin", "", nil))
	var ee *errs.Error
	if !errors.As(err, &ee) || ee.Kind != errs.Overloaded || ee.Message != "execution timed out after 2s" {
		t.Fatalf("err = %v", err)
	}
}

package launcher

import (
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/circlegate/circlegate/execution"
	"github.com/circlegate/circlegate/internal/redistest"
	"github.com/circlegate/circlegate/internal/testapps"
	"github.com/circlegate/circlegate/internal/testutil"
	"github.com/circlegate/circlegate/rpc"
)

// TestHostileAppFailsAlone: a guest that loops, traps, panics or writes too much fails
// that call only, with a clear code; its context is unchanged and other calls go on.
func TestHostileAppFailsAlone(t *testing.T) {
	e := startEnv(t, func(c *Config) {
		// A loop is stopped after a second; growing to 128 pages takes far less,
		// even on a loaded machine under the race detector.
		c.Execution.Limits.Timeout = time.Second
		c.Execution.Limits.MemoryPages = 128
	})
	owner, _ := e.login(e.A.Pub, e.A)
	wasm := testapps.BuildWAT(t, "../execution/testdata/hostile.wat")
	var app appInfo
	if err := owner.Call(ctxT(t), "app.install", map[string]any{"wasm": base64.StdEncoding.EncodeToString(wasm)}, &app); err != nil {
		t.Fatal(err)
	}
	bad := createContext(t, owner, map[string]any{"appId": app.AppID})
	good := createContext(t, owner, map[string]any{"appId": install(t, owner, "watcounter")})
	mutate := func(id, method string) error {
		return owner.Call(ctxT(t), "mutate", map[string]any{"contextId": id, "method": method}, nil)
	}
	if err := mutate(bad.ContextID, "ok"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method string
		code   int
	}{
		{"loop", rpc.CodeOverloaded},
		{"grow", rpc.CodeExecution},
		{"trap", rpc.CodeExecution},
		{"panic", rpc.CodeExecution},
		{"write_then_trap", rpc.CodeExecution},
		{"many_writes", rpc.CodeExecution},
		{"big_value", rpc.CodeExecution},
		{"bad_json", rpc.CodeExecution},
		{"oob_key", rpc.CodeExecution},
		{"no_such_method", rpc.CodeInvalidParams},
	} {
		err := mutate(bad.ContextID, tc.method)
		if rpcCode(err) != tc.code {
			t.Errorf("%s: %v, want code %d", tc.method, err, tc.code)
		}
		if err := mutate(good.ContextID, "increment"); err != nil {
			t.Fatalf("after %s, another context failed: %v", tc.method, err)
		}
	}
	var ci contextInfo
	if err := owner.Call(ctxT(t), "context.get", []string{bad.ContextID}, &ci); err != nil || ci.Seq != 1 {
		t.Fatalf("hostile context moved to seq %d (%v); only the one good call may commit", ci.Seq, err)
	}
	// A query that writes traps.
	if err := owner.Call(ctxT(t), "query", map[string]any{"contextId": bad.ContextID, "method": "write"}, nil); rpcCode(err) != rpc.CodeExecution {
		t.Fatalf("query that writes: %v", err)
	}
}

func TestPlay(t *testing.T) {
	e := startEnv(t)
	owner, _ := e.login(e.A.Pub, e.A)
	script := base64.StdEncoding.EncodeToString(testapps.BuildWAT(t, "../execution/testdata/hostile.wat"))
	ci := createContext(t, owner, map[string]any{"appId": install(t, owner, "watcounter")})
	// On a context, play commits like a mutation.
	var tx txResult
	if err := owner.Call(ctxT(t), "play", map[string]any{"script": script, "contextId": ci.ContextID, "entry": "ok"}, &tx); err != nil {
		t.Fatal(err)
	}
	if tx.Seq != 1 || string(tx.Output) != `{"ok":true}` {
		t.Fatalf("play on a context = %+v", tx)
	}
	// Without a context it only returns the output.
	tx = txResult{}
	if err := owner.Call(ctxT(t), "play", map[string]any{"script": script, "entry": "ok"}, &tx); err != nil || tx.Seq != 0 || tx.TxID != "" || string(tx.Output) != `{"ok":true}` {
		t.Fatalf("detached play = %+v, %v", tx, err)
	}
	// A guest (not a member) may play detached but not on the context.
	gc, _ := e.login(e.A.Pub, e.B)
	if err := gc.Call(ctxT(t), "play", map[string]any{"script": script, "contextId": ci.ContextID, "entry": "ok"}, nil); rpcCode(err) != rpc.CodeForbidden {
		t.Fatalf("guest play on a context: %v", err)
	}
	if err := gc.Call(ctxT(t), "play", map[string]any{"script": "AGFzbQEAAAA="}, nil); rpcCode(err) != rpc.CodeInvalidParams {
		t.Fatalf("play of a module without the ABI: %v", err)
	}
}

// TestQueueFull: past the queue's capacity a mutation is refused at once with -32006,
// and nothing of it runs.
func TestQueueFull(t *testing.T) {
	e := startEnv(t, func(c *Config) {
		c.Execution.Workers = 1
		c.Execution.Queue.Capacity = 1
		c.Execution.Limits.Timeout = 2 * time.Second
	})
	owner, _ := e.login(e.A.Pub, e.A)
	wasm := testapps.BuildWAT(t, "../execution/testdata/hostile.wat")
	var app appInfo
	if err := owner.Call(ctxT(t), "app.install", map[string]any{"wasm": base64.StdEncoding.EncodeToString(wasm)}, &app); err != nil {
		t.Fatal(err)
	}
	busy := createContext(t, owner, map[string]any{"appId": app.AppID})
	other := createContext(t, owner, map[string]any{"appId": app.AppID})
	// The one worker and the one queue slot are taken by a call that loops until its
	// timeout.
	go func() {
		_ = owner.Call(ctxT(t), "mutate", map[string]any{"contextId": busy.ContextID, "method": "loop"}, nil)
	}()
	q := e.g.Queue.(*execution.MemoryQueue)
	testutil.CheckFor(t, 5*time.Second, func() error {
		if q.Len() != 1 {
			return fmt.Errorf("queue holds %d jobs", q.Len())
		}
		return nil
	})
	err := owner.Call(ctxT(t), "mutate", map[string]any{"contextId": other.ContextID, "method": "ok"}, nil)
	if rpcCode(err) != rpc.CodeOverloaded {
		t.Fatalf("mutate while the queue is full: %v, want -32006", err)
	}
	var ci contextInfo
	if err := owner.Call(ctxT(t), "context.get", []string{other.ContextID}, &ci); err != nil || ci.Seq != 0 {
		t.Fatalf("a refused mutation ran: seq %d, %v", ci.Seq, err)
	}
}

// TestQueryOnTheReader: on the embedded store a query runs on its session's reader
// (it only computes and reads local state), in fleet mode on a serve worker (it waits
// for Redis). A query that spins until its time limit holds up its own session only:
// a query on another session answers meanwhile.
func TestQueryOnTheReader(t *testing.T) {
	e := startEnv(t, func(c *Config) { c.Execution.Limits.Timeout = 3 * time.Second })
	msg := []byte(`{"jsonrpc":"2.0","id":1,"method":"query","params":{"contextId":"c","method":"get"}}`)
	if !e.g.RPC.Inline(msg) {
		t.Error("query does not run on the reader on the embedded store")
	}
	srv := redistest.Start(t, redistest.Options{})
	if fleet := startEnv(t, func(c *Config) { c.Redis.URL = srv.URL() }); fleet.g.RPC.Inline(msg) {
		t.Error("query runs on the reader in fleet mode, where it waits for Redis")
	}

	owner, _ := e.login(e.A.Pub, e.A)
	var app appInfo
	wasm := testapps.BuildWAT(t, "../execution/testdata/hostile.wat")
	if err := owner.Call(ctxT(t), "app.install", map[string]any{"wasm": base64.StdEncoding.EncodeToString(wasm)}, &app); err != nil {
		t.Fatal(err)
	}
	bad := createContext(t, owner, map[string]any{"appId": app.AppID})
	good := createContext(t, owner, map[string]any{"appId": install(t, owner, "watcounter")})
	spinner, _ := e.login(e.A.Pub, e.A)
	spun := make(chan error, 1)
	go func() {
		spun <- spinner.Call(ctxT(t), "query", map[string]any{"contextId": bad.ContextID, "method": "loop"}, nil)
	}()
	time.Sleep(100 * time.Millisecond) // the loop is running
	var out struct {
		Output struct{ Value int } `json:"output"`
	}
	if err := owner.Call(ctxT(t), "query", map[string]any{"contextId": good.ContextID, "method": "get"}, &out); err != nil {
		t.Fatalf("query on another session while one spins: %v", err)
	}
	select {
	case err := <-spun:
		t.Fatalf("the spinning query ended before the other answered: %v", err)
	default:
	}
	if err := <-spun; rpcCode(err) != rpc.CodeOverloaded {
		t.Fatalf("spinning query: %v, want the time limit's -32006", err)
	}
}

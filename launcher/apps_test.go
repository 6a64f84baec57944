package launcher

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/circlegate/circlegate/client"
	"github.com/circlegate/circlegate/internal/testapps"
	"github.com/circlegate/circlegate/internal/testutil"
	"github.com/circlegate/circlegate/rpc"
)

type appInfo struct {
	AppID string `json:"appId"`
	Size  int    `json:"size"`
}

type contextInfo struct {
	ContextID string   `json:"contextId"`
	Seq       uint64   `json:"seq"`
	RootHash  string   `json:"rootHash"`
	Members   []string `json:"members"`
	Public    bool     `json:"public"`
}

type txResult struct {
	JobID    string          `json:"jobId"`
	TxID     string          `json:"txId"`
	Seq      uint64          `json:"seq"`
	RootHash string          `json:"rootHash"`
	Output   json.RawMessage `json:"output"`
	Events   []struct {
		Seq  uint64          `json:"seq"`
		Kind string          `json:"kind"`
		Data json.RawMessage `json:"data"`
	} `json:"events"`
}

type valueOut struct {
	Value int `json:"value"`
}

// install installs an example app as c and returns its id.
func install(t *testing.T, c *client.Client, name string) string {
	t.Helper()
	wasm := testapps.Build(t, name)
	var app appInfo
	// Installing compiles the module: seconds on a cold cache under the race detector.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := c.Call(ctx, "app.install", map[string]any{"wasm": base64.StdEncoding.EncodeToString(wasm), "name": name}, &app); err != nil {
		t.Fatalf("install %s: %v", name, err)
	}
	sum := sha256.Sum256(wasm)
	if app.AppID != hex.EncodeToString(sum[:]) || app.Size != len(wasm) {
		t.Fatalf("install = %+v", app)
	}
	return app.AppID
}

func createContext(t *testing.T, c *client.Client, params map[string]any) contextInfo {
	t.Helper()
	var ci contextInfo
	if err := c.Call(ctxT(t), "context.create", params, &ci); err != nil {
		t.Fatalf("context.create: %v", err)
	}
	return ci
}

func TestCounterLifecycle(t *testing.T) {
	e := startEnv(t)
	owner, _ := e.login(e.A.Pub, e.A)
	appID := install(t, owner, "counter")
	if again := install(t, owner, "counter"); again != appID {
		t.Fatalf("reinstall gave %s", again)
	}
	ci := createContext(t, owner, map[string]any{"appId": appID})
	if ci.Seq != 0 || len(ci.RootHash) != 64 {
		t.Fatalf("context = %+v", ci)
	}
	prev := ci.RootHash
	for i := 1; i <= 3; i++ {
		var tx txResult
		if err := owner.Call(ctxT(t), "mutate", map[string]any{"contextId": ci.ContextID, "method": "increment", "args": map[string]int{"by": 2}}, &tx); err != nil {
			t.Fatal(err)
		}
		var v valueOut
		_ = json.Unmarshal(tx.Output, &v)
		if tx.Seq != uint64(i) || v.Value != 2*i || tx.RootHash == prev || tx.TxID == "" {
			t.Fatalf("mutate %d = %+v", i, tx)
		}
		prev = tx.RootHash
	}
	var q struct{ Output valueOut }
	if err := owner.Call(ctxT(t), "query", map[string]any{"contextId": ci.ContextID, "method": "get"}, &q); err != nil || q.Output.Value != 6 {
		t.Fatalf("query = %+v, %v", q, err)
	}
	var st struct {
		Keys     int64  `json:"keys"`
		Bytes    int64  `json:"bytes"`
		Seq      uint64 `json:"seq"`
		RootHash string `json:"rootHash"`
	}
	if err := owner.Call(ctxT(t), "context.storage", []string{ci.ContextID}, &st); err != nil || st.Keys < 1 || st.Seq != 3 || st.RootHash != prev {
		t.Fatalf("storage = %+v, %v", st, err)
	}
	// An app in use cannot be uninstalled; once its context is gone it can.
	if err := owner.Call(ctxT(t), "app.uninstall", []string{appID}, nil); rpcCode(err) != rpc.CodeConflict {
		t.Fatalf("uninstall in use: %v", err)
	}
	if err := owner.Call(ctxT(t), "context.delete", []string{ci.ContextID}, nil); err != nil {
		t.Fatal(err)
	}
	if err := owner.Call(ctxT(t), "query", map[string]any{"contextId": ci.ContextID, "method": "get"}, nil); rpcCode(err) != rpc.CodeNotFound {
		t.Fatalf("query deleted context: %v", err)
	}
	if err := owner.Call(ctxT(t), "app.uninstall", []string{appID}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestRolesPerContext(t *testing.T) {
	e := startEnv(t)
	owner, _ := e.login(e.A.Pub, e.A)
	member, guest := testutil.NewKey(t), testutil.NewKey(t)
	mc, _ := e.login(e.A.Pub, member)
	gc, _ := e.login(e.A.Pub, guest)
	appID := install(t, owner, "counter")
	private := createContext(t, owner, map[string]any{"appId": appID, "members": []string{member.Pub}})
	public := createContext(t, owner, map[string]any{"appId": appID, "public": true})
	inc := func(c *client.Client, id string) error {
		return c.Call(ctxT(t), "mutate", map[string]any{"contextId": id, "method": "increment"}, nil)
	}
	get := func(c *client.Client, id string) error {
		return c.Call(ctxT(t), "query", map[string]any{"contextId": id, "method": "get"}, nil)
	}
	for _, tc := range []struct {
		name string
		err  error
		code int
	}{
		{"member mutates its context", inc(mc, private.ContextID), 0},
		{"member queries its context", get(mc, private.ContextID), 0},
		{"guest cannot query a private context", get(gc, private.ContextID), rpc.CodeForbidden},
		{"guest cannot mutate a private context", inc(gc, private.ContextID), rpc.CodeForbidden},
		{"guest queries a public context", get(gc, public.ContextID), 0},
		{"guest cannot mutate a public context", inc(gc, public.ContextID), rpc.CodeForbidden},
		{"member cannot install", mc.Call(ctxT(t), "app.install", map[string]any{"wasm": "AGFzbQEAAAA="}, nil), rpc.CodeForbidden},
		{"member cannot create contexts", mc.Call(ctxT(t), "context.create", map[string]any{"appId": appID}, nil), rpc.CodeForbidden},
		{"member cannot add members", mc.Call(ctxT(t), "context.members.add", map[string]any{"contextId": private.ContextID, "pubkeys": []string{guest.Pub}}, nil), rpc.CodeForbidden},
		{"member cannot delete", mc.Call(ctxT(t), "context.delete", []string{private.ContextID}, nil), rpc.CodeForbidden},
	} {
		if rpcCode(tc.err) != tc.code {
			t.Errorf("%s: %v, want code %d", tc.name, tc.err, tc.code)
		}
	}
	var list struct{ Contexts []contextInfo }
	if err := gc.Call(ctxT(t), "context.list", nil, &list); err != nil || len(list.Contexts) != 1 || list.Contexts[0].ContextID != public.ContextID {
		t.Fatalf("guest context.list = %+v, %v", list, err)
	}
	// Adding the guest as a member lets it mutate; removing it takes that back.
	if err := owner.Call(ctxT(t), "context.members.add", map[string]any{"contextId": private.ContextID, "pubkeys": []string{guest.Pub}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := inc(gc, private.ContextID); err != nil {
		t.Fatalf("new member mutate: %v", err)
	}
	if err := owner.Call(ctxT(t), "context.members.remove", map[string]any{"contextId": private.ContextID, "pubkeys": []string{guest.Pub}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := inc(gc, private.ContextID); rpcCode(err) != rpc.CodeForbidden {
		t.Fatalf("removed member mutate: %v", err)
	}
}

// TestTenantIsolation: nothing of tenant A is reachable from a session of tenant B,
// whatever its key — not even with A's own owner key.
func TestTenantIsolation(t *testing.T) {
	e := startEnv(t)
	ownerA, _ := e.login(e.A.Pub, e.A)
	appID := install(t, ownerA, "counter")
	ci := createContext(t, ownerA, map[string]any{"appId": appID, "public": true})
	for _, key := range []testutil.Key{e.A, e.B, e.AdminA} {
		c, _ := e.login(e.B.Pub, key)
		id := ci.ContextID
		for _, call := range []struct {
			method string
			params any
		}{
			{"app.get", []string{appID}},
			{"app.uninstall", []string{appID}},
			{"context.create", map[string]any{"appId": appID}},
			{"context.get", []string{id}},
			{"context.delete", []string{id}},
			{"context.members.add", map[string]any{"contextId": id, "pubkeys": []string{key.Pub}}},
			{"context.members.remove", map[string]any{"contextId": id, "pubkeys": []string{key.Pub}}},
			{"context.storage", []string{id}},
			{"query", map[string]any{"contextId": id, "method": "get"}},
			{"mutate", map[string]any{"contextId": id, "method": "increment"}},
			{"play", map[string]any{"contextId": id, "script": "AGFzbQEAAAA="}},
		} {
			err := c.Call(ctxT(t), call.method, call.params, nil)
			if code := rpcCode(err); code != rpc.CodeNotFound && code != rpc.CodeForbidden {
				t.Errorf("key %s… on tenant B: %s reached tenant A: %v", key.Pub[:8], call.method, err)
			}
		}
		var apps struct{ Apps []appInfo }
		var ctxs struct{ Contexts []contextInfo }
		if err := c.Call(ctxT(t), "app.list", nil, &apps); err != nil || len(apps.Apps) != 0 {
			t.Errorf("app.list on B = %+v, %v", apps, err)
		}
		if err := c.Call(ctxT(t), "context.list", nil, &ctxs); err != nil || len(ctxs.Contexts) != 0 {
			t.Errorf("context.list on B = %+v, %v", ctxs, err)
		}
	}
	// And A's context is untouched.
	var q struct{ Output valueOut }
	if err := ownerA.Call(ctxT(t), "query", map[string]any{"contextId": ci.ContextID, "method": "get"}, &q); err != nil || q.Output.Value != 0 {
		t.Fatalf("A's counter = %+v, %v", q, err)
	}
}

func TestIdempotency(t *testing.T) {
	e := startEnv(t)
	owner, _ := e.login(e.A.Pub, e.A)
	ci := createContext(t, owner, map[string]any{"appId": install(t, owner, "counter")})
	call := func(by int) (txResult, error) {
		var tx txResult
		err := owner.Call(ctxT(t), "mutate", map[string]any{"contextId": ci.ContextID, "method": "increment", "args": map[string]int{"by": by}, "idempotencyKey": "pay-1"}, &tx)
		return tx, err
	}
	// Ten concurrent retries of one call apply once and all see the same result.
	var wg sync.WaitGroup
	results := make([]txResult, 10)
	errs := make([]error, 10)
	for i := range results {
		wg.Go(func() { results[i], errs[i] = call(5) })
	}
	wg.Wait()
	for i := range results {
		if errs[i] != nil || results[i].TxID != results[0].TxID || string(results[i].Output) != string(results[0].Output) {
			t.Fatalf("retry %d = %+v, %v; first %+v", i, results[i], errs[i], results[0])
		}
	}
	if _, err := call(6); rpcCode(err) != rpc.CodeConflict {
		t.Fatalf("same key, other args: %v", err)
	}
	var q struct{ Output valueOut }
	if err := owner.Call(ctxT(t), "query", map[string]any{"contextId": ci.ContextID, "method": "get"}, &q); err != nil || q.Output.Value != 5 {
		t.Fatalf("counter = %+v, %v: the call applied more than once", q, err)
	}
}

func TestInstallRefusals(t *testing.T) {
	e := startEnv(t)
	owner, _ := e.login(e.A.Pub, e.A)
	for _, tc := range []struct {
		name string
		wasm string
	}{
		{"not base64", "!!!"},
		{"not wasm", base64.StdEncoding.EncodeToString([]byte("hello"))},
		{"empty module without the ABI marker", "AGFzbQEAAAA="},
	} {
		if err := owner.Call(ctxT(t), "app.install", map[string]any{"wasm": tc.wasm}, nil); rpcCode(err) != rpc.CodeInvalidParams {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	var apps struct{ Apps []appInfo }
	if err := owner.Call(ctxT(t), "app.list", nil, &apps); err != nil || len(apps.Apps) != 0 {
		t.Fatalf("apps after refusals = %+v, %v", apps, err)
	}
}

func TestForumAndWATApps(t *testing.T) {
	e := startEnv(t)
	owner, _ := e.login(e.A.Pub, e.A)
	forum := createContext(t, owner, map[string]any{"appId": install(t, owner, "forum"), "init": map[string]string{"name": "peers"}})
	var post txResult
	if err := owner.Call(ctxT(t), "mutate", map[string]any{"contextId": forum.ContextID, "method": "create_post", "args": map[string]string{"title": "hi", "body": "first"}}, &post); err != nil {
		t.Fatal(err)
	}
	if len(post.Events) != 1 || post.Events[0].Kind != "post_created" {
		t.Fatalf("create_post events = %+v", post.Events)
	}
	var pid struct {
		ID int `json:"id"`
	}
	_ = json.Unmarshal(post.Output, &pid)
	if err := owner.Call(ctxT(t), "mutate", map[string]any{"contextId": forum.ContextID, "method": "create_comment", "args": map[string]any{"postId": pid.ID, "body": "reply"}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := owner.Call(ctxT(t), "mutate", map[string]any{"contextId": forum.ContextID, "method": "create_comment", "args": map[string]any{"postId": 999, "body": "x"}}, nil); rpcCode(err) != rpc.CodeExecution {
		t.Fatalf("comment on a missing post: %v", err)
	}
	var list struct{ Output json.RawMessage }
	if err := owner.Call(ctxT(t), "query", map[string]any{"contextId": forum.ContextID, "method": "list_posts"}, &list); err != nil {
		t.Fatal(err)
	}
	if !json.Valid(list.Output) || !containsAll(string(list.Output), "first", "reply", e.A.Pub) {
		t.Fatalf("list_posts = %s", list.Output)
	}

	wat := createContext(t, owner, map[string]any{"appId": install(t, owner, "watcounter")})
	var tx txResult
	if err := owner.Call(ctxT(t), "mutate", map[string]any{"contextId": wat.ContextID, "method": "increment"}, &tx); err != nil || string(tx.Output) != `{"value":1}` {
		t.Fatalf("WAT increment = %+v, %v", tx, err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

package execution_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/execution"
	"github.com/circlegate/circlegate/internal/testapps"
	"github.com/circlegate/circlegate/store"
)

// memState is an in-memory StateReader that applies a call's writes.
type memState struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newState() *memState { return &memState{m: map[string][]byte{}} }

func (s *memState) Get(key []byte) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[string(key)]
	return v, ok, nil
}

func (s *memState) Scan(prefix, after []byte, limit int) ([]store.KV, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k := range s.m {
		if strings.HasPrefix(k, string(prefix)) && k > string(after) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	keys = keys[:min(len(keys), limit)]
	out := make([]store.KV, len(keys))
	for i, k := range keys {
		out[i] = store.KV{Key: []byte(k), Value: s.m[k]}
	}
	return out, nil
}

func (s *memState) apply(ws []store.Write) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range ws {
		if w.Delete {
			delete(s.m, string(w.Key))
		} else {
			s.m[string(w.Key)] = w.Value
		}
	}
}

func (s *memState) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// app is a built module with its content address.
type app struct {
	id   string
	wasm []byte
}

func newApp(wasm []byte) app {
	sum := sha256.Sum256(wasm)
	return app{id: hex.EncodeToString(sum[:]), wasm: wasm}
}

var (
	appsMu sync.Mutex
	apps   = map[string]app{}
)

// example builds (once per test binary) an example app or a test guest: a name
// ending in .wat is a WAT file in testdata, "goprobe" the Go guest in testdata.
func example(t testing.TB, name string) app {
	t.Helper()
	appsMu.Lock()
	defer appsMu.Unlock()
	if a, ok := apps[name]; ok {
		return a
	}
	var wasm []byte
	switch {
	case strings.HasSuffix(name, ".wat"):
		wasm = testapps.BuildWAT(t, "testdata/"+name)
	case name == "goprobe":
		wasm = testapps.BuildGo(t, "testdata/goprobe")
	default:
		wasm = testapps.Build(t, name)
	}
	a := newApp(wasm)
	apps[name] = a
	return a
}

// newEngine starts an engine; without a CacheDir it uses the compile cache shared
// by test runs.
func newEngine(t testing.TB, cfg execution.EngineConfig) *execution.Engine {
	t.Helper()
	if cfg.CacheDir == "" {
		cfg.CacheDir = testapps.CompileCacheDir(t)
	}
	e, err := execution.NewEngine(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

var txTime = time.Date(2026, 11, 22, 12, 0, 0, 123456789, time.UTC)

const callerKey = "02a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"

func call(a app, method, args string, st execution.StateReader) execution.Call {
	return execution.Call{
		Tenant: "tenant-a", AppID: a.id, Wasm: func() ([]byte, error) { return a.wasm, nil },
		Method: method, Args: []byte(args), Caller: callerKey, ContextID: "ctx-1", Time: txTime, State: st,
	}
}

// mustRun runs a call, applies its writes to st and returns its result.
func mustRun(t testing.TB, e *execution.Engine, c execution.Call, st *memState) execution.Result {
	t.Helper()
	res, err := e.Run(context.Background(), c)
	if err != nil {
		t.Fatalf("%s: %v", c.Method, err)
	}
	if st != nil {
		st.apply(res.Writes)
	}
	return res
}

func wantJSON(t testing.TB, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("output %q is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Fatalf("output = %s, want %s", gb, wb)
	}
}

func TestCounter(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{})
	counter, st := example(t, "counter"), newState()
	for i := 1; i <= 3; i++ {
		res := mustRun(t, e, call(counter, "increment", "", st), st)
		wantJSON(t, res.Output, fmt.Sprintf(`{"value":%d}`, i))
	}
	wantJSON(t, mustRun(t, e, call(counter, "increment", `{"by":5}`, st), st).Output, `{"value":8}`)
	res := mustRun(t, e, call(counter, "get", "", st), st)
	wantJSON(t, res.Output, `{"value":8}`)
	if len(res.Writes) != 0 {
		t.Fatalf("get wrote %v", res.Writes)
	}
	if res := mustRun(t, e, call(counter, "noop", "", st), st); res.Output != nil || res.Writes != nil {
		t.Fatalf("noop = %+v, want nothing", res)
	}
	if v, _, _ := st.Get([]byte("count")); string(v) != "8" {
		t.Fatalf("stored count = %q, want 8", v)
	}
}

func TestWATCounter(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{})
	wat, st := example(t, "watcounter"), newState()
	for i := 1; i <= 12; i++ {
		res := mustRun(t, e, call(wat, "increment", "", st), st)
		wantJSON(t, res.Output, fmt.Sprintf(`{"value":%d}`, i))
		if !slices.Equal(res.Logs, []string{"incremented"}) {
			t.Fatalf("logs = %q", res.Logs)
		}
	}
	wantJSON(t, mustRun(t, e, call(wat, "get", "", st), st).Output, `{"value":12}`)
}

func TestKV(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{})
	kv, st := example(t, "kv"), newState()
	mustRun(t, e, call(kv, "set", `{"key":"color","value":{"r":1,"g":[2,3]}}`, st), st)
	wantJSON(t, mustRun(t, e, call(kv, "get", `{"key":"color"}`, st), st).Output, `{"key":"color","value":{"r":1,"g":[2,3]},"found":true}`)
	wantJSON(t, mustRun(t, e, call(kv, "get", `{"key":"nope"}`, st), st).Output, `{"key":"nope","value":null,"found":false}`)
	wantJSON(t, mustRun(t, e, call(kv, "delete", `{"key":"color"}`, st), st).Output, `{"deleted":true}`)
	wantJSON(t, mustRun(t, e, call(kv, "delete", `{"key":"color"}`, st), st).Output, `{"deleted":false}`)
	if _, err := e.Run(context.Background(), call(kv, "set", `{"value":1}`, st)); !errs.Is(err, errs.Execution) || !strings.Contains(err.Error(), "key is required") {
		t.Fatalf("set without key: %v", err)
	}
}

// TestKVListPaging lists more entries than one storage_scan page (100) holds.
func TestKVListPaging(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{})
	kv, st := example(t, "kv"), newState()
	var want []string
	for i := range 250 {
		k := fmt.Sprintf("user/%04d", i)
		mustRun(t, e, call(kv, "set", fmt.Sprintf(`{"key":%q,"value":%d}`, k, i), st), st)
		want = append(want, k)
	}
	mustRun(t, e, call(kv, "set", `{"key":"other","value":true}`, st), st)
	var out struct {
		Items []struct {
			Key   string `json:"key"`
			Value int    `json:"value"`
		} `json:"items"`
	}
	res := mustRun(t, e, call(kv, "list", `{"prefix":"user/"}`, st), st)
	if err := json.Unmarshal(res.Output, &out); err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, it := range out.Items {
		got = append(got, it.Key)
		if it.Value != i {
			t.Fatalf("item %d = %+v", i, it)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %d keys, want %d in order: %v", len(got), len(want), got)
	}
	var all struct{ Items []json.RawMessage }
	res = mustRun(t, e, call(kv, "list", "", st), st)
	if err := json.Unmarshal(res.Output, &all); err != nil || len(all.Items) != 251 {
		t.Fatalf("list all: %d items, %v", len(all.Items), err)
	}
}

// TestOverlay checks that a call reads its own writes, in reads and in scans that
// span several pages, and that its Writes hold each key's final value.
func TestOverlay(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{})
	probe, st := example(t, "goprobe"), newState()
	want := map[string]string{}
	for i := 0; i < 500; i += 2 {
		k := fmt.Sprintf("p/%04d", i)
		st.m[k] = []byte("old")
		want[k] = "old"
	}
	st.m["q/outside"] = []byte("x")
	var set, del []string
	for i := 1; i < 500; i += 7 { // new keys between the old ones
		k := fmt.Sprintf("p/%04d", i)
		set, want[k] = append(set, k), "new:"+k
	}
	for i := 0; i < 500; i += 6 { // overwritten
		k := fmt.Sprintf("p/%04d", i)
		set, want[k] = append(set, k), "new:"+k
	}
	for i := 0; i < 500; i += 10 { // removed, some of them just set
		k := fmt.Sprintf("p/%04d", i)
		del = append(del, k)
		delete(want, k)
	}
	args, _ := json.Marshal(map[string]any{"set": set, "del": del, "prefix": "p/"})
	res := mustRun(t, e, call(probe, "overlay", string(args), st), nil)
	var got []string
	if err := json.Unmarshal(res.Output, &got); err != nil {
		t.Fatal(err)
	}
	var wantList []string
	for k, v := range want {
		wantList = append(wantList, k+"="+v)
	}
	slices.Sort(wantList)
	if !slices.Equal(got, wantList) {
		t.Fatalf("overlay listing: got %d entries, want %d\ngot  %v\nwant %v", len(got), len(wantList), got, wantList)
	}
	st.apply(res.Writes)
	for k, v := range want {
		if g, ok, _ := st.Get([]byte(k)); !ok || string(g) != v {
			t.Fatalf("after apply %s = %q, want %q", k, g, v)
		}
	}
	if st.len() != len(want)+1 {
		t.Fatalf("state has %d keys, want %d", st.len(), len(want)+1)
	}
}

func TestReadYourWrites(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{})
	probe, st := example(t, "goprobe"), newState()
	st.m["c"] = []byte("3")
	res := mustRun(t, e, call(probe, "rw", "", st), nil)
	wantJSON(t, res.Output, `{"readBack":"1","bExisted":true,"cExisted":true,"cAfter":false,"aExistedAt":false}`)
	want := []store.Write{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b"), Delete: true}, {Key: []byte("c"), Delete: true}}
	if len(res.Writes) != len(want) {
		t.Fatalf("writes = %+v", res.Writes)
	}
	for i, w := range res.Writes {
		if !bytes.Equal(w.Key, want[i].Key) || !bytes.Equal(w.Value, want[i].Value) || w.Delete != want[i].Delete {
			t.Fatalf("write %d = %+v, want %+v (first-touch order, final values)", i, w, want[i])
		}
	}
}

func TestForum(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{})
	forum, st := example(t, "forum"), newState()
	mustRun(t, e, call(forum, "init", `{"name":"peers"}`, st), st)
	res := mustRun(t, e, call(forum, "create_post", `{"title":"hello","body":"first post"}`, st), st)
	wantJSON(t, res.Output, `{"id":1}`)
	if len(res.Events) != 1 || res.Events[0].Kind != "post_created" {
		t.Fatalf("events = %+v", res.Events)
	}
	wantJSON(t, res.Events[0].Data, fmt.Sprintf(`{"id":1,"title":"hello","author":%q,"time":%q}`, callerKey, txTime.Format(time.RFC3339Nano)))
	res = mustRun(t, e, call(forum, "create_comment", `{"postId":1,"body":"nice"}`, st), st)
	wantJSON(t, res.Output, `{"id":1}`)
	if len(res.Events) != 1 || res.Events[0].Kind != "comment_created" {
		t.Fatalf("events = %+v", res.Events)
	}
	_, err := e.Run(context.Background(), call(forum, "create_comment", `{"postId":99,"body":"lost"}`, st))
	if !errs.Is(err, errs.Execution) || !strings.Contains(err.Error(), "post 99 not found") {
		t.Fatalf("comment on a missing post: %v", err)
	}
	mustRun(t, e, call(forum, "create_post", `{"title":"second","body":"b"}`, st), st)
	res = mustRun(t, e, call(forum, "list_posts", "", st), st)
	ts := txTime.Format(time.RFC3339Nano)
	wantJSON(t, res.Output, fmt.Sprintf(`{"name":"peers","posts":[
		{"id":1,"title":"hello","body":"first post","author":%[1]q,"time":%[2]q,
		 "comments":[{"id":1,"postId":1,"body":"nice","author":%[1]q,"time":%[2]q}]},
		{"id":2,"title":"second","body":"b","author":%[1]q,"time":%[2]q,"comments":[]}]}`, callerKey, ts))
	if _, err := e.Run(context.Background(), call(forum, "create_post", `{"title":""}`, st)); !errs.Is(err, errs.Execution) {
		t.Fatalf("empty title: %v", err)
	}
}

// TestDeterminism runs the same call on two engines (fresh instances) and twice on
// one (a pooled instance): the results are identical, and the Go guest's clocks
// read the tx time.
func TestDeterminism(t *testing.T) {
	probe := example(t, "goprobe")
	c := call(probe, "observe", `{"x":1}`, newState())
	e1, e2 := newEngine(t, execution.EngineConfig{}), newEngine(t, execution.EngineConfig{})
	r1 := mustRun(t, e1, c, nil)
	r2 := mustRun(t, e2, c, nil)
	r3 := mustRun(t, e1, c, nil)
	for _, r := range []execution.Result{r2, r3} {
		if !bytes.Equal(r.Output, r1.Output) || fmt.Sprint(r.Logs) != fmt.Sprint(r1.Logs) {
			t.Fatalf("results differ:\n%s\n%s", r1.Output, r.Output)
		}
	}
	var seen struct {
		Now, SDKNow           int64
		Rand, Caller, Context string
		ArgsEcho              string
	}
	if err := json.Unmarshal(r1.Output, &seen); err != nil {
		t.Fatal(err)
	}
	if seen.Now != txTime.UnixNano() || seen.SDKNow != txTime.UnixNano() {
		t.Fatalf("guest saw time.Now %d, sdk.Now %d; want the tx time %d", seen.Now, seen.SDKNow, txTime.UnixNano())
	}
	if seen.Caller != callerKey || seen.Context != "ctx-1" || seen.ArgsEcho != `{"x":1}` {
		t.Fatalf("guest saw %+v", seen)
	}
	// Another call (other args, other time) reads other random bytes.
	c2 := c
	c2.Time = txTime.Add(time.Second)
	var seen2 struct {
		Now  int64
		Rand string
	}
	if err := json.Unmarshal(mustRun(t, e1, c2, nil).Output, &seen2); err != nil {
		t.Fatal(err)
	}
	if seen2.Rand == seen.Rand || seen2.Now != c2.Time.UnixNano() {
		t.Fatalf("second call saw %+v, first %+v", seen2, seen)
	}
}

func TestSleepIsVirtual(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{})
	probe := example(t, "goprobe")
	mustRun(t, e, call(probe, "observe", "", nil), nil) // compile first
	start := time.Now()
	res := mustRun(t, e, call(probe, "sleep", "", nil), nil)
	if !strings.Contains(string(res.Output), `"slept":true`) || time.Since(start) > time.Second {
		t.Fatalf("sleep = %s after %v", res.Output, time.Since(start))
	}
}

func TestPoolReuse(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{})
	counter, st := example(t, "counter"), newState()
	for range 1000 {
		mustRun(t, e, call(counter, "increment", "", st), st)
	}
	if s := e.Stats(); s.Instantiated != 1 || s.Compiled != 1 || s.Discarded != 0 {
		t.Fatalf("after 1000 sequential calls: %+v, want one instance", s)
	}
	// Concurrent calls need more instances, but never more than the callers.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if _, err := e.Run(context.Background(), call(counter, "get", "", st)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if s := e.Stats(); s.Instantiated > 8 {
		t.Fatalf("8 concurrent callers made %d instances", s.Instantiated)
	}
}

// TestTenantsDoNotShareInstances: a guest may keep globals, so each tenant gets its
// own instances of the same app (compiled once).
func TestTenantsDoNotShareInstances(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{})
	counter := example(t, "counter")
	for _, tenant := range []string{"a", "b", "a", "b"} {
		c := call(counter, "get", "", nil)
		c.Tenant = tenant
		mustRun(t, e, c, nil)
	}
	if s := e.Stats(); s.Instantiated != 2 || s.Compiled != 1 {
		t.Fatalf("stats = %+v, want 2 instances of 1 module", s)
	}
}

func TestEvict(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{})
	counter := example(t, "counter")
	mustRun(t, e, call(counter, "get", "", nil), nil)
	e.Evict("tenant-a", counter.id)
	mustRun(t, e, call(counter, "get", "", nil), nil)
	if s := e.Stats(); s.Instantiated != 2 || s.Compiled != 2 {
		t.Fatalf("stats = %+v, want the app compiled and instantiated again", s)
	}
}

// TestEvictWhileRunning evicts an app while calls run on it: every call succeeds or
// is told to try again.
func TestEvictWhileRunning(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{})
	counter := example(t, "watcounter")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				_, err := e.Run(context.Background(), call(counter, "get", "", nil))
				if err != nil && !errs.Is(err, errs.Overloaded) {
					t.Error(err)
					return
				}
			}
		})
	}
	for range 50 {
		e.Evict("tenant-a", counter.id)
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	mustRun(t, e, call(counter, "get", "", nil), nil)
}

func TestCompileCacheOnDisk(t *testing.T) {
	dir := t.TempDir()
	counter := example(t, "counter")
	e1 := newEngine(t, execution.EngineConfig{CacheDir: dir})
	start := time.Now()
	mustRun(t, e1, call(counter, "get", "", nil), nil)
	cold := time.Since(start)
	if err := e1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) == 0 {
		t.Fatalf("cache dir is empty after a compile: %v", err)
	}
	e2 := newEngine(t, execution.EngineConfig{CacheDir: dir})
	start = time.Now()
	wantJSON(t, mustRun(t, e2, call(counter, "get", "", nil), nil).Output, `{"value":0}`)
	t.Logf("first call: %v with an empty cache, %v with a warm one", cold, time.Since(start))
}

func TestUnknownMethod(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{})
	counter := example(t, "counter")
	for _, m := range []string{"nope", "", "_initialize", "circlegate_abi_v1", "memory"} {
		_, err := e.Run(context.Background(), call(counter, m, "", nil))
		if !errs.Is(err, errs.InvalidParams) || !strings.Contains(err.Error(), "unknown method") {
			t.Errorf("method %q: %v", m, err)
		}
	}
}

func TestValidate(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{})
	ctx := context.Background()
	for _, name := range []string{"counter", "kv", "forum", "watcounter"} {
		if err := e.Validate(ctx, example(t, name).wasm); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, tc := range []struct{ file, want string }{
		{"nomarker.wat", `export a function "circlegate_abi_v1"`},
		{"nomemory.wat", `export its linear memory as "memory"`},
		{"unknownimport.wat", "imports env.storage_nuke, which ABI v1 does not have"},
		{"badsignature.wat", "imports env.storage_read as (i32, i32) -> (i32); ABI v1 has (i32, i32, i64) -> (i32)"},
		{"othermodule.wat", "imports host.exec"},
		{"command.wat", "build a reactor"},
		{"importsmemory.wat", "imports a memory"},
	} {
		err := e.Validate(ctx, testapps.BuildWAT(t, "testdata/invalid/"+tc.file))
		if !errs.Is(err, errs.InvalidParams) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want InvalidParams containing %q", tc.file, err, tc.want)
		}
	}
	for _, garbage := range [][]byte{nil, []byte("not wasm"), []byte("\x00asm\x01\x00\x00\x00\xff")} {
		if err := e.Validate(ctx, garbage); !errs.Is(err, errs.InvalidParams) || !strings.Contains(err.Error(), "invalid wasm module") {
			t.Errorf("%q: %v", garbage, err)
		}
	}
}

func TestWasmFetchError(t *testing.T) {
	e := newEngine(t, execution.EngineConfig{})
	c := call(example(t, "counter"), "get", "", nil)
	c.Wasm = func() ([]byte, error) { return nil, errs.E(errs.NotFound, "app gone") }
	if _, err := e.Run(context.Background(), c); !errs.Is(err, errs.NotFound) {
		t.Fatalf("err = %v, want the fetch error", err)
	}
	// A failed fetch is not cached.
	c = call(example(t, "counter"), "get", "", nil)
	mustRun(t, e, c, nil)
}

func TestEngineConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  execution.EngineConfig
		want string
	}{
		{execution.EngineConfig{PoolSize: -1}, "pool_size"},
		{execution.EngineConfig{Limits: execution.Limits{MemoryPages: 70000}}, "limits.memory_pages"},
		{execution.EngineConfig{Limits: execution.Limits{MaxWrites: -1}}, "limits.max_writes"},
		{execution.EngineConfig{Limits: execution.Limits{Timeout: -time.Second}}, "limits.timeout"},
	} {
		err := tc.cfg.Validate()
		var e *errs.Error
		if !errors.As(err, &e) || e.Param != tc.want {
			t.Errorf("%+v: %v, want param %s", tc.cfg, err, tc.want)
		}
	}
	d := execution.Limits{}.WithDefaults()
	if d.Timeout != 2*time.Second || d.MemoryPages != 1024 || d.MaxOutputBytes != 1<<20 || d.MaxEvents != 100 ||
		d.MaxEventBytes != 64<<10 || d.MaxLogLines != 100 || d.MaxKeyBytes != 1024 || d.MaxValueBytes != 1<<20 || d.MaxWrites != 1000 {
		t.Fatalf("defaults = %+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
}

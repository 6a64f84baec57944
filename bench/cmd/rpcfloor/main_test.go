package main

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/circlegate/circlegate/internal/redistest"
	"github.com/circlegate/circlegate/internal/testapps"
)

// TestListenAddr reads the listen address the way cgbench writes its config.
func TestListenAddr(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "circlegate.toml")
	text := "listen = \"127.0.0.1:4567\"\ndata = \"/tmp/x\"\n\n[sessions]\nlisten = \"wrong\"\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, err := listenAddr(conf)
	if err != nil || addr != "127.0.0.1:4567" {
		t.Fatalf("listenAddr = %q, %v; want 127.0.0.1:4567", addr, err)
	}
	if err := os.WriteFile(conf, []byte("[sessions]\nlisten = \"x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := listenAddr(conf); err == nil {
		t.Fatal("a config without a top-level listen address: no error")
	}
}

// TestSession runs the calls cgbench makes and checks each answer's id and shape.
func TestSession(t *testing.T) {
	addr := freeAddr(t)
	go func() { _ = run([]string{addr}) }()
	waitHealthy(t, addr)
	conn := dial(t, addr)
	if n, _ := call(t, conn, 1, "fetch_nonce", map[string]string{"pubkey": "02abc"})["nonce"].(string); len(n) != 64 {
		t.Fatalf("nonce %q", n)
	}
	if ok, _ := call(t, conn, 2, "authenticate", map[string]string{"pubkey": "02abc"})["authenticated"].(bool); !ok {
		t.Fatal("not authenticated")
	}
	if pk := call(t, conn, 3, "whoami", nil)["pubkey"]; pk != "02abc" {
		t.Fatalf("whoami pubkey %v, want the one fetch_nonce named", pk)
	}
	if v := outputValue(t, call(t, conn, 4, "query", map[string]string{"contextId": "c", "method": "get"})); v != 0 {
		t.Fatalf("query value %v, want 0", v)
	}
}

// quiet drops go-redis's log lines: the floors of earlier subtests keep redialling
// their stopped servers until the test binary ends.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// TestFleet runs the fleet floor on a real redis-server: a gateway and two worker
// processes' worth of workers, four clients incrementing two counters. Every
// increment is answered with a distinct new value, query reads the sum, and no job
// is left in the stream or pending. With records to keep, each commit also wrote
// them.
func TestFleet(t *testing.T) {
	redis.SetLogger(quiet{})
	defer func(k []keepGroup, w time.Duration, g bool) { keep, work, fleetGuest = k, w, g }(keep, work, fleetGuest)
	const clients, each = 4, 50
	perCounter := int64(clients * each / 2)
	for _, c := range []struct {
		keep  string
		guest bool // RPCFLOOR_FLEET_GUEST
		check func(ctx context.Context, rdb *redis.Client) (got, want int64, err error)
	}{
		{keep: ""},
		{keep: "", guest: true},
		{keep: "key:2:3", check: func(ctx context.Context, rdb *redis.Client) (int64, int64, error) {
			keys, err := rdb.Keys(ctx, counterKey("a")+":k0.2:*").Result()
			return int64(len(keys)), perCounter, err
		}},
		{keep: "field:2:3", check: func(ctx context.Context, rdb *redis.Client) (int64, int64, error) {
			n, err := rdb.HLen(ctx, counterKey("a")+":f0.2").Result()
			return n, perCounter, err
		}},
		{keep: "entry:1:3", check: func(ctx context.Context, rdb *redis.Client) (int64, int64, error) {
			n, err := rdb.XLen(ctx, counterKey("a")+":e0.1").Result()
			return n, perCounter, err
		}},
		{keep: "overwrite:1:3,key:1:4", check: func(ctx context.Context, rdb *redis.Client) (int64, int64, error) {
			v, err := rdb.HGet(ctx, counterKey("a"), "o0.1").Result()
			keys, kerr := rdb.Keys(ctx, counterKey("a")+":k1.1:*").Result()
			return int64(len(v) + len(keys)), 3 + perCounter, cmp.Or(err, kerr)
		}},
	} {
		t.Run(fmt.Sprintf("keep=%s,guest=%v", c.keep, c.guest), func(t *testing.T) {
			fleetGuest = c.guest
			var err error
			if keep, err = parseKeep(c.keep); err != nil {
				t.Fatal(err)
			}
			work = time.Microsecond
			srv := runFleet(t, clients, each)
			if c.check == nil {
				return
			}
			rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
			defer rdb.Close()
			if got, want, err := c.check(t.Context(), rdb); err != nil || got != want {
				t.Errorf("%s: %d, %v; want %d", c.keep, got, err, want)
			}
		})
	}
}

// runFleet starts the fleet floor on a new redis-server and runs clients × each
// increments of two counters, checking every answer and what is left in Redis.
func runFleet(t *testing.T, clients, each int) *redistest.Server {
	srv := redistest.Start(t, redistest.Options{AppendOnly: true})
	addr := freeAddr(t)
	conf := filepath.Join(t.TempDir(), "circlegate.toml")
	text := fmt.Sprintf("listen = %q\n\n[execution]\nworkers = 0\n\n[redis]\nurl = %q\n", addr, srv.URL())
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	if fleetGuest { // the workers' engines share the tests' compile cache
		if err := os.Symlink(testapps.CompileCacheDir(t), filepath.Join(data, "rpcfloor-cache")); err != nil {
			t.Fatal(err)
		}
	}
	go func() { _ = run([]string{"serve", "--config", conf}) }()
	for range 2 {
		go func() { _ = run([]string{"worker", "--config", conf, "--data", data, "--concurrency", "2"}) }()
	}
	waitHealthy(t, addr)
	if fleetGuest {
		wasm := base64.StdEncoding.EncodeToString(testapps.Build(t, "counter"))
		call(t, dial(t, addr), 1, "app.install", map[string]string{"wasm": wasm})
	}
	seen := map[string]map[float64]bool{"a": {}, "b": {}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for c := range clients {
		conn := dial(t, addr)
		wg.Go(func() {
			for i := range each {
				ctx := []string{"a", "b"}[(c+i)%2]
				res := call(t, conn, i+1, "mutate", map[string]string{"contextId": ctx, "method": "increment"})
				v := outputValue(t, res)
				if v < 0 {
					return
				}
				if res["seq"] != v {
					t.Errorf("mutate: seq %v, output value %v", res["seq"], v)
				}
				mu.Lock()
				if seen[ctx][v] {
					t.Errorf("counter %s: value %v answered twice", ctx, v)
				}
				seen[ctx][v] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	conn := dial(t, addr)
	for i, ctx := range []string{"a", "b"} {
		if v := outputValue(t, call(t, conn, i+1, "query", map[string]string{"contextId": ctx, "method": "get"})); v != float64(clients*each/2) {
			t.Errorf("counter %s: %v, want %d", ctx, v, clients*each/2)
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	if fleetGuest {
		if n, err := rdb.StrLen(t.Context(), floorApp).Result(); err != nil || n < 1000 {
			t.Errorf("STRLEN %s = %d, %v; want the counter's module", floorApp, n, err)
		}
	}
	if n, err := rdb.XLen(t.Context(), floorStream).Result(); err != nil || n != 0 {
		t.Errorf("XLEN %s = %d, %v; want 0 (acknowledged jobs are deleted)", floorStream, n, err)
	}
	if p, err := rdb.XPending(t.Context(), floorStream, floorGroup).Result(); err != nil || p.Count != 0 {
		t.Errorf("XPENDING %s %s = %+v, %v; want nothing pending", floorStream, floorGroup, p, err)
	}
	if p := srv.Info("pubsub_channels"); p != "1" {
		t.Errorf("pubsub_channels %q, want 1 (the gateway's reply channel)", p)
	}
	return srv
}

func TestParseKeep(t *testing.T) {
	if g, err := parseKeep(""); err != nil || g != nil {
		t.Errorf("empty: %v, %v; want nothing", g, err)
	}
	g, err := parseKeep("key:2:500,overwrite:6:8")
	if err != nil || len(g) != 2 || g[0].kind != "key" || g[0].count != 2 || len(g[0].value) != 500 ||
		g[1].kind != "overwrite" || g[1].count != 6 || len(g[1].value) != 8 {
		t.Errorf("key:2:500,overwrite:6:8: %+v, %v", g, err)
	}
	for _, bad := range []string{"key", "key:2", "hash:1:1", "key:0:1", "key:101:1", "key:x:1", "key:1:0", "key:1:big", "key:1:1,", "key:1:1:1"} {
		if _, err := parseKeep(bad); err == nil {
			t.Errorf("parseKeep(%q) accepted", bad)
		}
	}
}

func TestConfigValue(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "circlegate.toml")
	text := "listen = \"127.0.0.1:1\"\n[execution]\nurl = \"no\"\n\n[redis]\nurl = \"redis://127.0.0.1:2/0\"\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ section, key, want string }{
		{"redis", "url", "redis://127.0.0.1:2/0"}, {"", "listen", "127.0.0.1:1"}, {"sessions", "url", ""},
	} {
		if v, err := configValue(conf, c.section, c.key); err != nil || v != c.want {
			t.Errorf("[%s] %s = %q, %v; want %q", c.section, c.key, v, err, c.want)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitHealthy(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/health")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not healthy: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func dial(t *testing.T, addr string) *websocket.Conn {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/02abc", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// call sends one request and returns its result. A failed call or an error answer
// fails the test and returns nil (it may run on a goroutine of the test's own).
func call(t *testing.T, conn *websocket.Conn, id int, method string, params any) map[string]any {
	if err := conn.WriteJSON(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params}); err != nil {
		t.Error(err)
		return nil
	}
	var resp struct {
		ID     int             `json:"id"`
		Result map[string]any  `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	_, msg, err := conn.ReadMessage()
	if err != nil {
		t.Error(err)
		return nil
	}
	if err := json.Unmarshal(msg, &resp); err != nil {
		t.Errorf("%s: %v in %s", method, err, msg)
		return nil
	}
	if resp.ID != id || resp.Error != nil {
		t.Errorf("%s: id %d (want %d), error %s", method, resp.ID, id, resp.Error)
		return nil
	}
	return resp.Result
}

// outputValue is a result's output.value, or -1 (failing the test) when it has none.
func outputValue(t *testing.T, res map[string]any) float64 {
	out, ok := res["output"].(map[string]any)
	v, isNum := out["value"].(float64)
	if !ok || !isNum {
		t.Errorf("result %v has no output value", res)
		return -1
	}
	return v
}

func TestQueryWork(t *testing.T) {
	for v, want := range map[string]time.Duration{"": 0, "8us": 8 * time.Microsecond, "0s": 0} {
		if d, err := parseWork("X", v); err != nil || d != want {
			t.Errorf("parseWork(%q) = %v, %v; want %v", v, d, err, want)
		}
	}
	for _, v := range []string{"8", "-1us", "fast"} {
		if _, err := parseWork("X", v); err == nil {
			t.Errorf("parseWork(%q) accepted", v)
		}
	}
	const d = 200 * time.Microsecond
	start := time.Now()
	spin(d)
	if took := time.Since(start); took < d {
		t.Errorf("spin(%v) returned after %v", d, took)
	}
}

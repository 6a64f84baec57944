package launcher

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circlegate/circlegate/client"
	"github.com/circlegate/circlegate/execution"
	"github.com/circlegate/circlegate/internal/testapps"
	"github.com/circlegate/circlegate/internal/testutil"
	"github.com/gorilla/websocket"
)

// fleetEnv, when set to a Redis URL, makes every gateway startEnv starts a node of a
// fleet on that Redis, each with a key prefix of its own.
const fleetEnv = "CIRCLEGATE_TEST_FLEET_REDIS"

var envPrefixes atomic.Int64

// env is a running gateway with two tenants (A and B) and an admin key of A.
type env struct {
	t       *testing.T
	g       *Gateway
	A, B    testutil.Key
	AdminA  testutil.Key
	baseURL string
}

// startEnv starts a gateway on port 0 in a temp dir; mutate adjusts the config.
func startEnv(t *testing.T, mutate ...func(*Config)) *env {
	t.Helper()
	return startEnvLog(t, nil, mutate...)
}

// startEnvLog is startEnv with the gateway's log, at debug level, going to logw.
func startEnvLog(t *testing.T, logw io.Writer, mutate ...func(*Config)) *env {
	t.Helper()
	e := &env{t: t, A: testutil.NewKey(t), B: testutil.NewKey(t), AdminA: testutil.NewKey(t)}
	cfg := &Config{
		Listen:    "127.0.0.1:0",
		Data:      t.TempDir(),
		Execution: execution.Config{CacheDir: testapps.CompileCacheDir(t)},
		Tenants: []TenantConfig{
			{PubKey: e.A.Pub, Name: "a", Admins: []string{e.AdminA.Pub}},
			{PubKey: e.B.Pub, Name: "b"},
		},
	}
	if url := os.Getenv(fleetEnv); url != "" { // TestFleetMode runs tests as fleet nodes
		cfg.Redis.URL, cfg.Redis.Prefix = url, fmt.Sprintf("env%d", envPrefixes.Add(1))
		cfg.Redis.Queue.Block = 100 * time.Millisecond
	}
	for _, m := range mutate {
		m(cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if logw != nil {
		log = slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	g, err := Start(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	e.g = g
	e.baseURL = g.URL()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := g.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// wsURL returns the WebSocket URL of a tenant key as given (any spelling).
func (e *env) wsURL(tenantKey string) string {
	return "ws" + strings.TrimPrefix(e.baseURL, "http") + "/" + tenantKey
}

// dial connects a client to tenant key.
func (e *env) dial(tenantKey string, opts ...client.Option) *client.Client {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, e.wsURL(tenantKey), opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// login dials tenant and authenticates as k.
func (e *env) login(tenantKey string, k testutil.Key) (*client.Client, client.AuthResult) {
	e.t.Helper()
	c := e.dial(tenantKey)
	res, err := c.Authenticate(ctxT(e.t), k.Priv)
	if err != nil {
		e.t.Fatalf("authenticate: %v", err)
	}
	return c, res
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rawWS dials without the client library, for protocol-level tests.
func (e *env) rawWS(path string, header http.Header) (*websocket.Conn, *http.Response, error) {
	return websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(e.baseURL, "http")+path, header)
}

// post sends a JSON body and returns the status and body.
func (e *env) post(path, token string, body string) (int, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.baseURL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return e.do(req)
}

func (e *env) get(path string) (int, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.baseURL+path, nil)
	return e.do(req)
}

func (e *env) do(req *http.Request) (int, []byte) {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// metric returns the value of one sample of /metrics, e.g.
// `circlegate_ws_disconnects_total{reason="slow"}`.
func (e *env) metric(sample string) (float64, error) {
	_, body := e.get("/metrics")
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			var v float64
			_, err := fmt.Sscan(rest, &v)
			return v, err
		}
	}
	return 0, fmt.Errorf("no sample %s", sample)
}

// serveWorkers returns the gateway's circlegate_ws_serve_workers, read from its
// registry (reading /metrics would open a connection, and goroutines with it).
func (e *env) serveWorkers(t *testing.T) int {
	t.Helper()
	mfs, err := e.g.Metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "circlegate_ws_serve_workers" {
			return int(mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
	t.Fatal("no circlegate_ws_serve_workers")
	return 0
}

// rpcCode returns the code of a *client.Error, or 0.
func rpcCode(err error) int {
	if ce, ok := err.(*client.Error); ok {
		return ce.Code
	}
	return 0
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(bytes.TrimSpace(b), v); err != nil {
		t.Fatalf("not JSON (%v): %s", err, b)
	}
}

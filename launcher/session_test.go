package launcher

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/circlegate/circlegate/client"
	"github.com/circlegate/circlegate/internal/testutil"
	"github.com/circlegate/circlegate/rpc"
	"github.com/gorilla/websocket"
)

func shutdown(t *testing.T, g *Gateway) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// closeCode waits for the server to close conn and returns the close frame's code.
func closeCode(t *testing.T, conn *websocket.Conn) int {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := conn.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		if err != nil {
			t.Fatalf("read ended without a close frame: %v", err)
		}
	}
}

func TestMessageTooBig(t *testing.T) {
	e := startEnv(t, func(c *Config) { c.Sessions.MaxMessageBytes = 1024 })
	conn, _, err := e.rawWS("/"+e.A.Pub, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"jsonrpc":"2.0","id":1,"method":"fetch_nonce","params":["`+strings.Repeat("a", 2000)+`"]}`))
	if code := closeCode(t, conn); code != websocket.CloseMessageTooBig {
		t.Fatalf("close code = %d, want 1009", code)
	}
	testutil.CheckFor(t, 2*time.Second, func() error { return e.metricAtLeast(`circlegate_ws_disconnects_total{reason="message_too_big"}`, 1) })
}

func TestAuthTimeout(t *testing.T) {
	// Long enough for a loaded CI machine to authenticate in time, short for a test.
	e := startEnv(t, func(c *Config) { c.Sessions.AuthTimeout = time.Second })
	conn, _, err := e.rawWS("/"+e.A.Pub, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if code := closeCode(t, conn); code != 4003 {
		t.Fatalf("close code = %d, want 4003 auth_timeout", code)
	}
	// An authenticated session outlives the timeout.
	c, _ := e.login(e.A.Pub, e.A)
	time.Sleep(1500 * time.Millisecond) // past the auth timeout
	if err := c.Call(ctxT(t), "whoami", nil, nil); err != nil {
		t.Fatalf("authenticated session closed: %v", err)
	}
}

func TestNoPong(t *testing.T) {
	e := startEnv(t, func(c *Config) {
		c.Sessions.PingInterval = 50 * time.Millisecond
		c.Sessions.PongTimeout = 250 * time.Millisecond
	})
	// This client never reads, so it never answers a ping.
	conn, _, err := e.rawWS("/"+e.A.Pub, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	testutil.CheckFor(t, 3*time.Second, func() error { return e.metricAtLeast(`circlegate_ws_disconnects_total{reason="no_pong"}`, 1) })
	// A client that reads answers pings and stays.
	c, _ := e.login(e.A.Pub, e.A)
	time.Sleep(600 * time.Millisecond) // several ping intervals and pong timeouts
	if err := c.Call(ctxT(t), "whoami", nil, nil); err != nil {
		t.Fatalf("reading client closed: %v", err)
	}
}

func TestSlowReaderIsClosed(t *testing.T) {
	e := startEnv(t, func(c *Config) { c.Sessions.OutboundQueueBytes = 64 << 10 })
	conn, _, err := e.rawWS("/"+e.A.Pub, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// rpc.discover replies are several KiB; this client asks for many and reads none.
	req := []byte(`{"jsonrpc":"2.0","id":1,"method":"rpc.discover"}`)
	for i := 0; i < 5000; i++ {
		_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
		if err := conn.WriteMessage(websocket.TextMessage, req); err != nil {
			break // the server closed it
		}
	}
	testutil.CheckFor(t, 5*time.Second, func() error { return e.metricAtLeast(`circlegate_ws_disconnects_total{reason="slow"}`, 1) })
	// Other sessions are unaffected.
	c, _ := e.login(e.A.Pub, e.A)
	if err := c.Call(ctxT(t), "whoami", nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestConnectionLimits(t *testing.T) {
	e := startEnv(t, func(c *Config) {
		c.Sessions.MaxConnections = 3
		c.Sessions.MaxConnectionsPerTenant = 2
	})
	e.dial(e.A.Pub)
	e.dial(e.A.Pub)
	_, resp, err := e.rawWS("/"+e.A.Pub, nil)
	if resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third session of A: %v %v", resp, err)
	}
	e.dial(e.B.Pub)
	_, resp, err = e.rawWS("/"+e.B.Pub, nil)
	if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("fourth session: %v %v", resp, err)
	}
	for _, reason := range []string{"tenant_connection_limit", "connection_limit"} {
		if err := e.metricAtLeast(`circlegate_ws_refused_total{reason="`+reason+`"}`, 1); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRequestRateLimit(t *testing.T) {
	e := startEnv(t, func(c *Config) {
		c.Sessions.RequestRate = 1
		c.Sessions.RequestBurst = 3
	})
	c := e.dial(e.A.Pub)
	var limited int
	for i := 0; i < 6; i++ {
		if rpcCode(c.Call(ctxT(t), "rpc.discover", nil, nil)) == rpc.CodeRateLimited {
			limited++
		}
	}
	if limited < 2 || limited > 3 {
		t.Fatalf("%d of 6 calls limited, want 2 or 3 past a burst of 3 at 1/s", limited)
	}
}

func TestShutdownSendsGoingAway(t *testing.T) {
	e := startEnv(t)
	c, _ := e.login(e.A.Pub, e.A)
	shutdown(t, e.g)
	<-c.Done()
	var ce *client.CloseError
	if !errors.As(c.Err(), &ce) || ce.Code != websocket.CloseGoingAway || ce.Reason != "shutdown" {
		t.Fatalf("close = %v, want 1001 shutdown", c.Err())
	}
	if _, resp, err := e.rawWS("/"+e.A.Pub, nil); err == nil || (resp != nil && resp.StatusCode == http.StatusSwitchingProtocols) {
		t.Fatal("upgrade accepted after shutdown")
	}
}

func TestConcurrentRepliesCarryIDs(t *testing.T) {
	e := startEnv(t)
	c, _ := e.login(e.A.Pub, e.A)
	const n = 200
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			var w whoami
			err := c.Call(ctxT(t), "whoami", nil, &w)
			if err == nil && w.PubKey != e.A.Pub {
				err = errors.New("wrong reply")
			}
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	batch := []client.BatchCall{{Method: "whoami", Result: &whoami{}}, {Method: "nope"}, {Method: "fetch_nonce", Params: []string{"bad"}}}
	if err := c.Batch(ctxT(t), batch); err != nil {
		t.Fatal(err)
	}
	if batch[0].Error != nil || batch[0].Result.(*whoami).Role != "owner" || rpcCode(batch[1].Error) != rpc.CodeMethodNotFound || rpcCode(batch[2].Error) != rpc.CodeInvalidParams {
		t.Fatalf("batch = %+v", batch)
	}
}

func TestMetricsExposed(t *testing.T) {
	e := startEnv(t)
	c, _ := e.login(e.A.Pub, e.A)
	_ = c.Call(ctxT(t), "whoami", nil, nil)
	for _, s := range []string{
		`circlegate_ws_sessions`,
		`circlegate_rpc_requests_total{method="whoami",outcome="ok"}`,
		`circlegate_rpc_requests_total{method="authenticate",outcome="ok"}`,
		`circlegate_rpc_request_duration_seconds_count{method="whoami"}`,
		`circlegate_ws_disconnects_total{reason="slow"}`,
	} {
		if _, err := e.metric(s); err != nil {
			t.Error(err)
		}
	}
	for _, s := range []string{`circlegate_ws_sessions`, `circlegate_rpc_requests_total{method="whoami",outcome="ok"}`} {
		if err := e.metricAtLeast(s, 1); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *env) metricAtLeast(sample string, min float64) error {
	v, err := e.metric(sample)
	if err != nil {
		return err
	}
	if v < min {
		return errors.New(sample + " below expected")
	}
	return nil
}

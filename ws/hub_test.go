package ws

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/circlegate/circlegate/rpc"
	"github.com/circlegate/circlegate/tenant"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/gorilla/websocket"
)

// newTestHub serves a hub whose only method is "sleep {ms}" (from the rpc package's
// test spec), for tenant "t".
func newTestHub(t *testing.T, cfg Config) (*Hub, string) {
	t.Helper()
	doc, err := os.ReadFile("../rpc/testdata/test_openrpc.json")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := rpc.ParseSpec(doc)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := rpc.NewServer(rpc.Config{}, spec, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rpc.Register(srv, "sleep", rpc.Public, func(ctx context.Context, _ *rpc.Call, p struct {
		MS int `json:"ms"`
	}) (int, error) {
		select {
		case <-time.After(time.Duration(p.MS) * time.Millisecond):
			return p.MS, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	})
	hub, err := NewHub(cfg, srv, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tn := &tenant.Tenant{PubKey: "t"}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hub.ServeHTTP(w, r.WithContext(tenant.NewContext(r.Context(), tn)))
	}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hub.Shutdown(ctx)
		hs.Close()
	})
	return hub, "ws" + strings.TrimPrefix(hs.URL, "http")
}

// dial opens a WebSocket to url, closed when the test ends.
func dial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestRequestsRunConcurrently(t *testing.T) {
	_, url := newTestHub(t, Config{})
	conn := dial(t, url)
	_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"jsonrpc":"2.0","id":"slow","method":"sleep","params":[300]}`))
	_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"jsonrpc":"2.0","id":"fast","method":"sleep","params":[1]}`))
	var first struct{ ID string }
	if err := conn.ReadJSON(&first); err != nil {
		t.Fatal(err)
	}
	if first.ID != "fast" {
		t.Fatalf("first reply id = %q: requests ran one after another", first.ID)
	}
}

func TestConcurrencyLimitPerSession(t *testing.T) {
	_, url := newTestHub(t, Config{MaxConcurrentRequests: 1})
	conn := dial(t, url)
	_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"jsonrpc":"2.0","id":"slow","method":"sleep","params":[200]}`))
	_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"jsonrpc":"2.0","id":"fast","method":"sleep","params":[1]}`))
	var first struct{ ID string }
	if err := conn.ReadJSON(&first); err != nil {
		t.Fatal(err)
	}
	if first.ID != "slow" {
		t.Fatalf("first reply id = %q: more than one request ran at once", first.ID)
	}
}

func TestCloseTenant(t *testing.T) {
	hub, url := newTestHub(t, Config{})
	conn := dial(t, url)
	deadline := time.Now().Add(2 * time.Second)
	for hub.Len() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := hub.CloseTenant("t", DisconnectTenantRemoved); n != 1 {
		t.Fatalf("closed %d sessions", n)
	}
	_, _, err := conn.ReadMessage()
	ce, ok := err.(*websocket.CloseError)
	if !ok || ce.Code != 4503 || ce.Text != "tenant_removed" {
		t.Fatalf("err = %v, want close 4503 tenant_removed", err)
	}
}

func TestValidate(t *testing.T) {
	for key, cfg := range map[string]Config{
		"max_message_bytes":          {MaxMessageBytes: 10},
		"outbound_queue_bytes":       {OutboundQueueBytes: 5},
		"request_rate":               {RequestRate: -1},
		"max_connections_per_tenant": {MaxConnectionsPerTenant: -1},
		"read_buffer_size":           {ReadBufferSize: 10},
	} {
		err := cfg.WithDefaults().Validate()
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: err = %v", key, err)
		}
	}
	if err := (Config{}).WithDefaults().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
}

// TestServeWorkersStay: goroutines started for requests while every serve worker is
// busy stay as workers up to serve_workers, and later requests run on them.
func TestServeWorkersStay(t *testing.T) {
	hub, _ := newTestHub(t, Config{ServeWorkers: 3})
	release := make(chan struct{})
	var started sync.WaitGroup
	for range 5 {
		started.Add(1)
		hub.dispatch(func() {
			started.Done()
			<-release
		})
	}
	started.Wait()
	if n := hub.served.Load(); n != 3 {
		t.Fatalf("%d serve workers while 5 requests run, want 3", n)
	}
	close(release)
	before := runtime.NumGoroutine()
	ran := make(chan struct{})
	for range 10 {
		hub.dispatch(func() { ran <- struct{}{} })
		<-ran
	}
	if n := hub.served.Load(); n != 3 {
		t.Fatalf("%d serve workers after the burst, want 3", n)
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Fatalf("goroutines %d -> %d: requests did not run on the idle workers", before, after)
	}
}

// parked waits until every session of hub has no reader goroutine (or fails).
func parked(t *testing.T, hub *Hub, want bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		all := hub.Len() > 0
		hub.mu.Lock()
		for _, s := range hub.sessions {
			s.mu.Lock()
			all = all && s.reading != want
			s.mu.Unlock()
		}
		hub.mu.Unlock()
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions not parked=%v within 3s", want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestIdleSessionParks: a session with nothing to read past reader_idle gives up its
// reader and buffer, and its client's next request, ping or close still gets through.
func TestIdleSessionParks(t *testing.T) {
	hub, conn := parkingSession(t)
	for round := range 3 {
		parked(t, hub, true)
		hub.mu.Lock()
		for _, s := range hub.sessions {
			if s.in.buf != nil {
				t.Fatal("a parked session holds its read buffer")
			}
		}
		hub.mu.Unlock()
		req := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"sleep","params":[1]}`, round)
		if err := conn.WriteMessage(websocket.TextMessage, []byte(req)); err != nil {
			t.Fatal(err)
		}
		var reply struct{ ID int }
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		if err := conn.ReadJSON(&reply); err != nil || reply.ID != round {
			t.Fatalf("round %d: reply %+v, %v", round, reply, err)
		}
	}
	// A ping to a parked session is answered.
	parked(t, hub, true)
	pong := make(chan string, 1)
	conn.SetPongHandler(func(data string) error { pong <- data; return nil })
	if err := conn.WriteControl(websocket.PingMessage, []byte("hello"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	go func() { _, _, _ = conn.ReadMessage() }()
	select {
	case got := <-pong:
		if got != "hello" {
			t.Fatalf("pong %q", got)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no pong from a parked session")
	}
	// Closing a parked session from the server finishes it.
	parked(t, hub, true)
	if n := hub.CloseTenant("t", DisconnectTenantRemoved); n != 1 {
		t.Fatalf("closed %d sessions", n)
	}
	finished(t, hub)
}

// TestParkedSessionClientClose: a client's close frame to a parked session is
// answered with its code, and the session finishes.
func TestParkedSessionClientClose(t *testing.T) {
	hub, conn := parkingSession(t)
	parked(t, hub, true)
	if err := conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4321, "bye")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, _, err := conn.ReadMessage()
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != 4321 {
		t.Fatalf("err = %v, want the close code 4321 back", err)
	}
	finished(t, hub)
}

// TestProtocolErrorCloses: an unmasked client frame closes the session with 1002.
func TestProtocolErrorCloses(t *testing.T) {
	hub, url := newTestHub(t, Config{})
	conn := dial(t, url)
	if _, err := conn.UnderlyingConn().Write([]byte{0x81, 0x02, 'h', 'i'}); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, _, err := conn.ReadMessage()
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.CloseProtocolError {
		t.Fatalf("err = %v, want close 1002", err)
	}
	finished(t, hub)
}

// finished waits until hub has no session left (or fails).
func finished(t *testing.T, hub *Hub) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for hub.Len() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a closed session did not finish")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// parkingSession serves a hub whose sessions park after 20 ms and dials one session.
func parkingSession(t *testing.T) (*Hub, *websocket.Conn) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the idle poller is epoll")
	}
	hub, url := newTestHub(t, Config{ReaderIdle: 20 * time.Millisecond})
	conn := dial(t, url)
	return hub, conn
}

// TestManySessionsPark: every one of many sessions that made a request and went
// quiet gives up its reader.
func TestManySessionsPark(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the idle poller is epoll")
	}
	hub, url := newTestHub(t, Config{ReaderIdle: 20 * time.Millisecond})
	const n = 300
	for i := range n {
		conn := dial(t, url)
		req := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"sleep","params":[1]}`, i)
		var reply struct{ ID int }
		if err := conn.WriteMessage(websocket.TextMessage, []byte(req)); err != nil {
			t.Fatal(err)
		}
		if err := conn.ReadJSON(&reply); err != nil || reply.ID != i {
			t.Fatalf("session %d: %+v, %v", i, reply, err)
		}
	}
	if hub.Len() != n {
		t.Fatalf("%d sessions, want %d", hub.Len(), n)
	}
	parked(t, hub, true)
}

// TestReaderIdleNegativeKeepsReader: with reader_idle negative a quiet session keeps
// its reader.
func TestReaderIdleNegativeKeepsReader(t *testing.T) {
	hub, url := newTestHub(t, Config{ReaderIdle: -1})
	conn := dial(t, url)
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"jsonrpc":"2.0","id":1,"method":"sleep","params":[1]}`)); err != nil {
		t.Fatal(err)
	}
	var reply struct{ ID int }
	if err := conn.ReadJSON(&reply); err != nil || reply.ID != 1 {
		t.Fatalf("reply %+v, %v", reply, err)
	}
	time.Sleep(200 * time.Millisecond)
	parked(t, hub, false)
}

// duringUpgrade runs f once, between the next session's upgrade and its add.
func duringUpgrade(t *testing.T, f func()) {
	t.Helper()
	var once sync.Once
	hook := func() { once.Do(f) }
	upgradedHook.Store(&hook)
	t.Cleanup(func() { upgradedHook.Store(nil) })
}

// wantClose reads from conn until it is closed, and fails unless with code.
func wantClose(t *testing.T, conn *websocket.Conn, code int) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := conn.ReadMessage()
		if ce, ok := err.(*websocket.CloseError); ok && ce.Code == code {
			return
		}
		if err != nil {
			t.Fatalf("read ended with %v, want close %d", err, code)
		}
	}
}

// TestCloseTenantDuringUpgrade: a session whose upgrade is answered as its tenant is
// removed closes too, though CloseTenant ran before the hub had added it.
func TestCloseTenantDuringUpgrade(t *testing.T) {
	hub, url := newTestHub(t, Config{})
	duringUpgrade(t, func() { hub.CloseTenant("t", DisconnectTenantRemoved) })
	wantClose(t, dial(t, url), 4503)
}

// TestCloseRevokedDuringUpgrade: likewise for a session whose token is revoked as
// its upgrade is answered.
func TestCloseRevokedDuringUpgrade(t *testing.T) {
	hub, url := newTestHub(t, Config{})
	auth, err := tenant.NewAuth(tenant.AuthConfig{}, tenant.NewTokens(bytes.Repeat([]byte{7}, 32), time.Now), nil)
	if err != nil {
		t.Fatal(err)
	}
	auth.OnRevoke(func() { hub.CloseRevoked() })
	hub.auth = auth // before any session
	priv, err := secp256k1.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub := tenant.PubKeyHex(priv.PubKey())
	tn := &tenant.Tenant{PubKey: "t"}
	n, err := auth.FetchNonce(t.Context(), tn, pub)
	if err != nil {
		t.Fatal(err)
	}
	_, tok, err := auth.Authenticate(t.Context(), tn, pub, tenant.SignPersonal(priv, []byte(n.Value)), n.Value)
	if err != nil {
		t.Fatal(err)
	}
	duringUpgrade(t, func() {
		if err := auth.RevokeKeys(context.Background(), "t", pub); err != nil {
			t.Error(err)
		}
	})
	wantClose(t, dial(t, url+"?token="+tok), 4502)
}

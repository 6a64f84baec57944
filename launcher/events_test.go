package launcher

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circlegate/circlegate/client"
	"github.com/circlegate/circlegate/internal/testutil"
	"github.com/circlegate/circlegate/store"
	"github.com/gorilla/websocket"
)

// nextEvent waits for the next event notification on c.
func nextEvent(t *testing.T, c *client.Client) client.Event {
	t.Helper()
	for {
		select {
		case n := <-c.Notifications():
			ev, ok, err := client.ParseEvent(n)
			if err != nil {
				t.Fatalf("bad event notification %s: %v", n.Params, err)
			}
			if ok {
				return ev
			}
		case <-c.Done():
			t.Fatalf("connection closed while waiting for an event: %v", c.Err())
		case <-time.After(10 * time.Second):
			t.Fatal("no event within 10s")
		}
	}
}

// expectNoEvent checks that no event arrives on c within a short while.
func expectNoEvent(t *testing.T, c *client.Client) {
	t.Helper()
	select {
	case n := <-c.Notifications():
		t.Fatalf("unexpected notification %s %s", n.Method, n.Params)
	case <-time.After(200 * time.Millisecond):
	}
}

// forumEnv is a gateway with a forum context of tenant A whose members are the owner
// and member; guest is another key of tenant A.
type forumEnv struct {
	*env
	owner, member *client.Client
	memberKey     testutil.Key
	guestKey      testutil.Key
	ctx           contextInfo
	appID         string
}

func startForum(t *testing.T, public bool, mutate ...func(*Config)) *forumEnv {
	e := startEnv(t, mutate...)
	f := &forumEnv{env: e, memberKey: testutil.NewKey(t), guestKey: testutil.NewKey(t)}
	f.owner, _ = e.login(e.A.Pub, e.A)
	f.appID = install(t, f.owner, "forum")
	f.ctx = createContext(t, f.owner, map[string]any{"appId": f.appID, "members": []string{f.memberKey.Pub}, "public": public})
	f.member, _ = e.login(e.A.Pub, f.memberKey)
	return f
}

func (f *forumEnv) post(t *testing.T, c *client.Client, title string) txResult {
	t.Helper()
	var tx txResult
	if err := c.Call(ctxT(t), "mutate", map[string]any{"contextId": f.ctx.ContextID, "method": "create_post",
		"args": map[string]any{"title": title, "body": "b"}}, &tx); err != nil {
		t.Fatalf("mutate: %v", err)
	}
	return tx
}

func subscribe(t *testing.T, c *client.Client, ids []string, since map[string]uint64) client.SubscribeResult {
	t.Helper()
	res, err := c.Subscribe(ctxT(t), ids, since)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	return res
}

// TestEventsOverWebSocket: each committed tx yields StateMutation then the app's
// events, numbered gap-free, with the tx's seq, id and rootHash.
func TestEventsOverWebSocket(t *testing.T) {
	f := startForum(t, false)
	res := subscribe(t, f.member, []string{f.ctx.ContextID}, nil)
	if !slices.Equal(res.Subscribed, []string{f.ctx.ContextID}) || !res.Recovered[f.ctx.ContextID] || len(res.Refused) != 0 {
		t.Fatalf("subscribe = %+v", res)
	}
	var seqs []uint64
	for i := range 3 {
		tx := f.post(t, f.owner, fmt.Sprintf("post %d", i))
		sm := nextEvent(t, f.member)
		if sm.Kind != "StateMutation" || sm.TxSeq != tx.Seq || sm.TxID != tx.TxID || sm.RootHash != tx.RootHash || sm.ContextID != f.ctx.ContextID {
			t.Fatalf("event %+v is not the StateMutation of tx %+v", sm, tx)
		}
		app := nextEvent(t, f.member)
		if app.Kind != "post_created" || app.TxSeq != tx.Seq || !strings.Contains(string(app.Data), fmt.Sprintf(`"post %d"`, i)) {
			t.Fatalf("event %+v is not the post_created of tx %d", app, tx.Seq)
		}
		if len(tx.Events) != 1 || tx.Events[0].Seq != app.Seq {
			t.Fatalf("mutate's events %+v do not carry the app event's seq %d", tx.Events, app.Seq)
		}
		seqs = append(seqs, sm.Seq, app.Seq)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("event seqs %v are not gap-free", seqs)
		}
	}
	// The owner's own session gets them too, and lifecycle events follow in order.
	subscribe(t, f.owner, []string{f.ctx.ContextID}, nil)
	other := testutil.NewKey(t)
	if err := f.owner.Call(ctxT(t), "context.members.add", map[string]any{"contextId": f.ctx.ContextID, "pubkeys": []string{other.Pub}}, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client.Client{f.member, f.owner} {
		ev := nextEvent(t, c)
		if ev.Kind != "MembersChanged" || ev.Seq != seqs[len(seqs)-1]+1 {
			t.Fatalf("after members.add got %+v, want MembersChanged seq %d", ev, seqs[len(seqs)-1]+1)
		}
	}
	// unsubscribe stops delivery to that session only.
	un, err := f.member.Unsubscribe(ctxT(t), []string{f.ctx.ContextID, "never-subscribed"})
	if err != nil || !slices.Equal(un, []string{f.ctx.ContextID}) {
		t.Fatalf("unsubscribe = %v, %v", un, err)
	}
	f.post(t, f.owner, "after unsubscribe")
	if ev := nextEvent(t, f.owner); ev.Kind != "StateMutation" {
		t.Fatalf("owner got %+v", ev)
	}
	expectNoEvent(t, f.member)
	if err := f.owner.Call(ctxT(t), "context.delete", map[string]any{"contextId": f.ctx.ContextID}, nil); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, f.owner) // the post_created of the last post
	if ev := nextEvent(t, f.owner); ev.Kind != "ContextDeleted" {
		t.Fatalf("after context.delete got %+v, want ContextDeleted", ev)
	}
}

// TestRemovedMemberLosesSubscription: a member removed from a private context gets
// the MembersChanged event that removes it, and nothing after.
func TestRemovedMemberLosesSubscription(t *testing.T) {
	f := startForum(t, false)
	subscribe(t, f.member, []string{f.ctx.ContextID}, nil)
	subscribe(t, f.owner, []string{f.ctx.ContextID}, nil)
	if err := f.owner.Call(ctxT(t), "context.members.remove", map[string]any{"contextId": f.ctx.ContextID, "pubkeys": []string{f.memberKey.Pub}}, nil); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, f.member); ev.Kind != "MembersChanged" || !strings.Contains(string(ev.Data), f.memberKey.Pub) {
		t.Fatalf("removed member got %+v, want the MembersChanged that removes it", ev)
	}
	nextEvent(t, f.owner)
	testutil.CheckFor(t, 5*time.Second, func() error {
		f.post(t, f.owner, "after removal")
		if ev := nextEvent(t, f.owner); ev.Kind != "StateMutation" {
			return fmt.Errorf("owner got %+v", ev)
		}
		nextEvent(t, f.owner)
		select {
		case n := <-f.member.Notifications():
			return fmt.Errorf("removed member still gets %s", n.Params)
		case <-time.After(100 * time.Millisecond):
			return nil
		}
	})
}

// TestSubscribeRefusals: only contexts the caller may read are subscribed; each
// refusal says why, and the readable ones in the same call are still subscribed.
func TestSubscribeRefusals(t *testing.T) {
	f := startForum(t, false)
	public := createContext(t, f.owner, map[string]any{"appId": f.appID, "public": true})
	guest, _ := f.login(f.A.Pub, f.guestKey)
	res := subscribe(t, guest, []string{f.ctx.ContextID, public.ContextID, "no-such-context"}, nil)
	if !slices.Equal(res.Subscribed, []string{public.ContextID}) {
		t.Errorf("guest subscribed to %v, want only the public context", res.Subscribed)
	}
	codes := map[string]int{}
	for _, r := range res.Refused {
		codes[r.ContextID] = r.Error.Code
	}
	if codes[f.ctx.ContextID] != -32003 || codes["no-such-context"] != -32004 || len(codes) != 2 {
		t.Errorf("refusals = %v, want the private context -32003 and the unknown one -32004", codes)
	}
	// A session of tenant B, even with tenant A's own key, reaches nothing of A.
	bSession, _ := f.login(f.B.Pub, f.A)
	res = subscribe(t, bSession, []string{f.ctx.ContextID, public.ContextID}, nil)
	if len(res.Subscribed) != 0 || len(res.Refused) != 2 {
		t.Fatalf("tenant B session subscribed to tenant A contexts: %+v", res)
	}
	for _, r := range res.Refused {
		if r.Error.Code != -32004 {
			t.Errorf("tenant B refusal for %s = %d, want -32004 (not found)", r.ContextID, r.Error.Code)
		}
	}
	f.post(t, f.owner, "secret")
	expectNoEvent(t, bSession)
	expectNoEvent(t, guest) // subscribed only to the public context
	if err := f.owner.Call(ctxT(t), "mutate", map[string]any{"contextId": public.ContextID, "method": "create_post",
		"args": map[string]any{"title": "open", "body": "b"}}, nil); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, guest); ev.ContextID != public.ContextID {
		t.Fatalf("guest received %+v, want the public context's event", ev)
	}
	// Bad params and unauthenticated sessions.
	if _, err := guest.Subscribe(ctxT(t), nil, nil); rpcCode(err) != -32602 {
		t.Errorf("subscribe with no ids: %v, want -32602", err)
	}
	anon := f.dial(f.A.Pub)
	if _, err := anon.Subscribe(ctxT(t), []string{public.ContextID}, nil); rpcCode(err) != -32001 {
		t.Errorf("unauthenticated subscribe: %v, want -32001", err)
	}
	// Over HTTP JSON-RPC there is no stream to deliver to.
	_, auth := f.login(f.A.Pub, f.A)
	code, body := f.env.post("/"+f.A.Pub+"/jsonrpc", auth.Token, `{"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"contextIds":["x"]}}`)
	if code != 200 || !strings.Contains(string(body), "-32003") || !strings.Contains(string(body), "SSE") {
		t.Errorf("subscribe over HTTP = %d %s, want -32003 pointing at SSE", code, body)
	}
}

// TestResume: a client that comes back with since gets exactly what it missed, then
// live events; beyond history it is told recovered=false.
func TestResume(t *testing.T) {
	f := startForum(t, false, func(c *Config) { c.Store.History = store.HistoryConfig{MaxEvents: 20} })
	first, _ := f.login(f.A.Pub, f.memberKey)
	subscribe(t, first, []string{f.ctx.ContextID}, nil)
	f.post(t, f.owner, "seen")
	nextEvent(t, first)
	last := nextEvent(t, first).Seq
	first.Close()
	for i := range 3 {
		f.post(t, f.owner, fmt.Sprintf("missed %d", i))
	}
	again, _ := f.login(f.A.Pub, f.memberKey)
	res := subscribe(t, again, []string{f.ctx.ContextID}, map[string]uint64{f.ctx.ContextID: last})
	if !res.Recovered[f.ctx.ContextID] {
		t.Fatalf("resume within history: %+v", res)
	}
	f.post(t, f.owner, "live")
	for i := range 8 { // 3 missed txs and 1 live one, two events each
		ev := nextEvent(t, again)
		if ev.Seq != last+1+uint64(i) {
			t.Fatalf("event %d after resume has seq %d, want %d", i, ev.Seq, last+1+uint64(i))
		}
		if i == 7 && !strings.Contains(string(ev.Data), `"live"`) {
			t.Fatalf("last event %+v is not the live post", ev)
		}
		if ev.Kind == "StateMutation" && len(ev.RootHash) != 64 {
			t.Fatalf("event %d, replayed from history or live, has rootHash %q", i, ev.RootHash)
		}
	}
	expectNoEvent(t, again)

	for i := range 12 { // 24 events: history (20) no longer reaches back to last+1
		f.post(t, f.owner, fmt.Sprintf("flood %d", i))
	}
	late, _ := f.login(f.A.Pub, f.memberKey)
	res = subscribe(t, late, []string{f.ctx.ContextID}, map[string]uint64{f.ctx.ContextID: last})
	if res.Recovered[f.ctx.ContextID] {
		t.Fatalf("resume from before history: recovered = true")
	}
	tx := f.post(t, f.owner, "after gap")
	if ev := nextEvent(t, late); ev.Kind != "StateMutation" || ev.TxSeq != tx.Seq {
		t.Fatalf("after an unrecovered resume the first event is %+v, want the next live tx %d", ev, tx.Seq)
	}
}

// TestSlowSubscriber: a subscriber that stops reading is closed as slow once its
// queue passes the bound; another subscriber of the same context gets everything.
func TestSlowSubscriber(t *testing.T) {
	f := startForum(t, false, func(c *Config) { c.Sessions.OutboundQueueBytes = 32 << 10 })
	dialer := &websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096) // so the socket fills up fast
		}
		return c, err
	}}
	slow := f.dial(f.A.Pub, client.WithDialer(dialer), client.WithNotificationBuffer(1))
	if _, err := slow.Authenticate(ctxT(t), f.memberKey.Priv); err != nil {
		t.Fatal(err)
	}
	subscribe(t, slow, []string{f.ctx.ContextID}, nil)
	subscribe(t, f.member, []string{f.ctx.ContextID}, nil)
	// The member reads as events come.
	var received atomic.Int64
	go func() {
		for {
			select {
			case n := <-f.member.Notifications():
				if _, ok, _ := client.ParseEvent(n); ok {
					received.Add(1)
				}
			case <-f.member.Done():
				return
			}
		}
	}()
	// The slow client reads nothing more: its notification buffer of 1 fills and its
	// reader blocks. Each comment event carries a 10 KB body.
	var tx txResult
	body := strings.Repeat("x", 10000)
	if err := f.owner.Call(ctxT(t), "mutate", map[string]any{"contextId": f.ctx.ContextID, "method": "create_post", "args": map[string]any{"title": "t", "body": "b"}}, &tx); err != nil {
		t.Fatal(err)
	}
	// The gateway's socket send buffer (up to 4 MiB here) fills first, then the
	// session's queue (32 KiB): comment until the slow session is closed. Each comment
	// waits until the member has its events, so that the member, whose queue is as
	// small, is never the one that falls behind (on a loaded CI machine a burst of
	// comments could outrun its reader too).
	comments := 0
	for ; comments < 1500; comments++ {
		if err := f.owner.Call(ctxT(t), "mutate", map[string]any{"contextId": f.ctx.ContextID, "method": "create_comment",
			"args": map[string]any{"postId": 1, "body": body}}, nil); err != nil {
			t.Fatal(err)
		}
		testutil.CheckFor(t, 10*time.Second, func() error {
			if got, want := received.Load(), int64(2+2*(comments+1)); got < want {
				closed := "open"
				select {
				case <-f.member.Done():
					closed = fmt.Sprintf("closed (%v)", f.member.Err())
				default:
				}
				return fmt.Errorf("the reading subscriber (session %s) has %d events after %d comments, want %d", closed, got, comments+1, want)
			}
			return nil
		})
		if comments%50 == 49 {
			if v, _ := f.metric(`circlegate_ws_disconnects_total{reason="slow"}`); v == 1 {
				break
			}
		}
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		v, err := f.metric(`circlegate_ws_disconnects_total{reason="slow"}`)
		if err != nil || v != 1 {
			return fmt.Errorf("slow disconnects = %v (%v) after %d comments, want 1", v, err, comments)
		}
		return nil
	})
	t.Logf("the slow subscriber was closed after %d comments", comments+1)
	select {
	case <-slow.Done():
		if ce, ok := slow.Err().(*client.CloseError); ok && ce.Code != 4001 {
			t.Errorf("slow subscriber closed with %d %q, want 4001", ce.Code, ce.Reason)
		}
	default:
	}
	want := int64(2 + 2*(comments+1)) // the post and each comment: StateMutation and the app's event
	testutil.CheckFor(t, 10*time.Second, func() error {
		if got := received.Load(); got != want {
			return fmt.Errorf("the reading subscriber received %d events, want %d", got, want)
		}
		return nil
	})
	var who struct{ Role string }
	if err := f.member.Call(ctxT(t), "whoami", nil, &who); err != nil {
		t.Fatalf("the fast subscriber's session suffered: %v", err)
	}
}

// sseStream is an open SSE connection read line by line.
type sseStream struct {
	resp   *http.Response
	r      *bufio.Reader
	connID string
}

type sseRecord struct{ id, event, data string }

func (s *sseStream) next(t *testing.T) sseRecord {
	t.Helper()
	var rec sseRecord
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("SSE stream ended: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if rec.event != "" || rec.data != "" {
				return rec
			}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			rec.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			rec.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			rec.data = line[6:]
		}
	}
}

func (e *env) openSSE(t *testing.T, token, query string, header http.Header) *sseStream {
	t.Helper()
	return e.openSSEAt(t, e.A.Pub, token, query, header)
}

// openSSEAt opens an SSE stream of tenant tenantKey.
func (e *env) openSSEAt(t *testing.T, tenantKey, token, query string, header http.Header) *sseStream {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.baseURL+"/"+tenantKey+"/sse"+query, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /sse = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &sseStream{resp: resp, r: bufio.NewReader(resp.Body)}
	rec := s.next(t)
	if rec.event != "connect" || json.Unmarshal([]byte(rec.data), &s.connID) != nil || len(s.connID) < 16 {
		t.Fatalf("first SSE record = %+v, want event connect with a connection id", rec)
	}
	return s
}

func (s *sseStream) event(t *testing.T) client.Event {
	t.Helper()
	rec := s.next(t)
	var ev client.Event
	if rec.event != "message" || json.Unmarshal([]byte(rec.data), &ev) != nil {
		t.Fatalf("SSE record %+v is not an event message", rec)
	}
	if want := fmt.Sprintf("%s:%d", ev.ContextID, ev.Seq); rec.id != want {
		t.Fatalf("SSE id %q, want %q", rec.id, want)
	}
	return ev
}

// TestSSE: the Calimero-shaped SSE stream: connect, subscribe by POST, events with
// ids, resume with Last-Event-ID, and nothing left behind when streams close.
func TestSSE(t *testing.T) {
	f := startForum(t, false)
	_, memberAuth := f.login(f.A.Pub, f.memberKey)
	_, guestAuth := f.login(f.A.Pub, f.guestKey)
	// Serve workers that start during the test stay for later requests: they are
	// not streams' leftovers.
	goroutines := runtime.NumGoroutine() - f.serveWorkers(t)

	if code, _ := f.get("/" + f.A.Pub + "/sse"); code != 401 {
		t.Errorf("SSE without a token = %d, want 401", code)
	}
	if code, _ := f.get("/" + f.A.Pub + "/sse?token=cg1.bogus"); code != 401 {
		t.Errorf("SSE with a bad token = %d, want 401", code)
	}
	s := f.openSSE(t, memberAuth.Token, "", nil)
	sub := func(token, id, method string, ids ...string) (int, string) {
		b, _ := json.Marshal(map[string]any{"id": id, "method": method, "params": map[string]any{"contextIds": ids}})
		code, body := f.env.post("/"+f.A.Pub+"/sse/subscription", token, string(b))
		return code, string(body)
	}
	if code, body := sub(guestAuth.Token, s.connID, "subscribe", f.ctx.ContextID); code != 403 {
		t.Errorf("another key changing the stream's subscriptions = %d %s, want 403", code, body)
	}
	if code, _ := sub(memberAuth.Token, "nope", "subscribe", f.ctx.ContextID); code != 404 {
		t.Errorf("unknown connection id = %d, want 404", code)
	}
	code, body := sub(memberAuth.Token, s.connID, "subscribe", f.ctx.ContextID)
	if code != 200 || !strings.Contains(body, `"result":{"subscribed":["`+f.ctx.ContextID+`"]`) {
		t.Fatalf("subscribe = %d %s", code, body)
	}
	tx := f.post(t, f.owner, "hello")
	sm := s.event(t)
	if sm.Kind != "StateMutation" || sm.TxSeq != tx.Seq || sm.RootHash != tx.RootHash {
		t.Fatalf("SSE StateMutation = %+v for tx %+v", sm, tx)
	}
	app := s.event(t)
	if app.Kind != "post_created" || app.Seq != sm.Seq+1 {
		t.Fatalf("SSE app event = %+v", app)
	}
	// A guest's own stream cannot subscribe to the private context.
	g := f.openSSE(t, guestAuth.Token, "", nil)
	if code, body := sub(guestAuth.Token, g.connID, "subscribe", f.ctx.ContextID); code != 200 || !strings.Contains(body, "-32003") || strings.Contains(body, `"subscribed":["`) {
		t.Errorf("guest subscribe over SSE = %d %s, want a -32003 refusal", code, body)
	}
	// Reconnect with Last-Event-ID and the context in the URL, as EventSource does.
	s.resp.Body.Close()
	f.post(t, f.owner, "missed")
	h := http.Header{"Last-Event-Id": {fmt.Sprintf("%s:%d", app.ContextID, app.Seq)}}
	s2 := f.openSSE(t, "", "?token="+memberAuth.Token+"&contextId="+f.ctx.ContextID, h)
	if rec := s2.next(t); rec.event != "subscribed" || !strings.Contains(rec.data, `"recovered":{"`+f.ctx.ContextID+`":true}`) {
		t.Fatalf("after a resume the stream said %+v", rec)
	}
	if ev := s2.event(t); ev.Seq != app.Seq+1 || ev.Kind != "StateMutation" {
		t.Fatalf("first event after Last-Event-ID resume = %+v, want seq %d", ev, app.Seq+1)
	}
	if ev := s2.event(t); !strings.Contains(string(ev.Data), `"missed"`) {
		t.Fatalf("second event after resume = %+v, want the missed post", ev)
	}
	code, body = sub(memberAuth.Token, s2.connID, "unsubscribe", f.ctx.ContextID)
	if code != 200 || !strings.Contains(body, `"unsubscribed":["`+f.ctx.ContextID+`"]`) {
		t.Fatalf("unsubscribe = %d %s", code, body)
	}
	// Twenty more streams, each subscribed at open, so that anything a closed stream
	// left behind would show twenty times over the slack for the process's own
	// background goroutines (storage, timers) that may come and go meanwhile.
	var more []*sseStream
	for range 20 {
		m := f.openSSE(t, memberAuth.Token, "?contextId="+f.ctx.ContextID, nil)
		if rec := m.next(t); rec.event != "subscribed" {
			t.Fatalf("stream opened with a context said %+v first", rec)
		}
		more = append(more, m)
	}
	s2.resp.Body.Close()
	g.resp.Body.Close()
	for _, m := range more {
		m.resp.Body.Close()
	}
	const slack = 4
	testutil.CheckFor(t, 10*time.Second, func() error {
		http.DefaultClient.CloseIdleConnections() // keep-alive connections hold goroutines on both sides
		if n := runtime.NumGoroutine() - f.serveWorkers(t); n > goroutines+slack {
			return fmt.Errorf("%d goroutines besides serve workers after every stream closed, %d before", n, goroutines)
		}
		if v, _ := f.metric("circlegate_sse_streams"); v != 0 {
			return fmt.Errorf("%v SSE streams still open", v)
		}
		return nil
	})
}

// TestSubscribeCLI: circlegate subscribe prints events as JSON lines.
func TestSubscribeCLI(t *testing.T) {
	f := startForum(t, false)
	out := make(chan string, 1)
	go func() {
		code, stdout, stderr := runMain(context.Background(), "subscribe", "--url", f.wsURL(f.A.Pub),
			"--key", hex.EncodeToString(f.memberKey.Priv.Serialize()), "--count", "2", f.ctx.ContextID)
		out <- fmt.Sprintf("%d\n%s\n%s", code, stdout, stderr)
	}()
	testutil.CheckFor(t, 10*time.Second, func() error {
		if n := f.g.Hub.Len(); n < 3 {
			return fmt.Errorf("%d sessions, waiting for the CLI's", n)
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond) // let it subscribe
	f.post(t, f.owner, "cli")
	select {
	case res := <-out:
		lines := strings.Split(res, "\n")
		if lines[0] != "0" || !strings.Contains(lines[1], `"kind":"StateMutation"`) || !strings.Contains(lines[2], `"kind":"post_created"`) {
			t.Fatalf("subscribe CLI printed:\n%s", res)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("subscribe CLI did not finish")
	}
	code, _, stderr := runMain(context.Background(), "subscribe", "--url", f.wsURL(f.A.Pub), "--key", hex.EncodeToString(f.guestKey.Priv.Serialize()), f.ctx.ContextID)
	if code != 1 || !strings.Contains(stderr, "-32003") {
		t.Errorf("subscribe to a forbidden context = %d %q, want 1 and the refusal", code, stderr)
	}
}

// TestWatchResumesAcrossRestart: the Go client's Watch redials a gateway that went
// away and resumes after the last event it delivered: across the restart it delivers
// every event once, in order.
func TestWatchResumesAcrossRestart(t *testing.T) {
	data := t.TempDir()
	f := startForum(t, false, func(c *Config) { c.Data = data })
	addr := f.g.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := client.Watch(ctx, client.WatchConfig{URL: f.wsURL(f.A.Pub), Key: f.memberKey.Priv,
		ContextIDs: []string{f.ctx.ContextID}, MaxBackoff: 200 * time.Millisecond})
	defer w.Stop()
	testutil.CheckFor(t, 10*time.Second, func() error {
		if n := f.g.Hub.Len(); n < 3 {
			return fmt.Errorf("%d sessions, waiting for the watcher's", n)
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond) // let it subscribe
	var seqs []uint64
	next := func() client.Event {
		t.Helper()
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("watcher stopped: %v", w.Err())
			}
			seqs = append(seqs, ev.Seq)
			return ev
		case <-time.After(15 * time.Second):
			t.Fatalf("no event from the watcher; got %v", seqs)
		}
		return client.Event{}
	}
	f.post(t, f.owner, "before")
	next()
	next()
	shutdown(t, f.g)

	// The same data on the same address, and two posts the watcher has not seen yet
	// before it gets back in.
	g2 := startEnv(t, func(c *Config) {
		c.Data, c.Listen = data, addr
		c.Tenants = []TenantConfig{{PubKey: f.A.Pub}}
	})
	owner, _ := g2.login(f.A.Pub, f.A)
	for _, title := range []string{"during", "after"} {
		if err := owner.Call(ctxT(t), "mutate", map[string]any{"contextId": f.ctx.ContextID, "method": "create_post",
			"args": map[string]any{"title": title, "body": "b"}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for range 4 {
		next()
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("watcher delivered seqs %v across a restart, want consecutive", seqs)
		}
	}
	select {
	case ev := <-w.Events():
		t.Fatalf("unexpected extra event %+v after %v", ev, seqs)
	case <-time.After(200 * time.Millisecond):
	}
}

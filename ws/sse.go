package ws

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/events"
	"github.com/circlegate/circlegate/rpc"
	"github.com/circlegate/circlegate/tenant"
)

// SSE streams (GET /<tenant>/sse) carry the same subscriptions as WebSocket sessions,
// one way: the client changes its subscriptions with POST /<tenant>/sse/subscription
// naming the stream's connection id. They count against the same connection limits.

// sseRecord is an event as one SSE record, made once per event for every stream, in
// sseRecords.
var sseRecord = events.NewEncoding(func(m *events.Message) []byte {
	const pre, mid, post = "id: ", "\nevent: message\ndata: ", "\n\n"
	ev, id := m.JSON(), m.ID()
	return sseRecords.fill(len(pre)+len(id)+len(mid)+len(ev)+len(post), func(b []byte) []byte {
		return append(append(append(append(append(b, pre...), id...), mid...), ev...), post...)
	})
})

var sseRecords arena

// stream is one open SSE connection. Its handler hijacks the connection and writes
// the response head itself, so that records go through an outbox like a session's
// frames (the stream ends when the connection closes: no chunking). The handler's
// goroutine then only waits for the client to go.
type stream struct {
	out       outbox // first: its hot fields start the stream's first cache line
	id        string
	hub       *Hub
	principal *tenant.Principal
	subs      *events.Subscriptions
	conn      net.Conn

	mu        sync.Mutex
	closed    bool
	reason    Disconnect
	pingTimer *time.Timer
	expiry    *time.Timer // ends the stream when its token expires
}

// ServeSSE handles GET /<tenant>/sse. The token comes in Authorization: Bearer or
// ?token=. Optional ?contextId=ID (repeatable) subscribes at once, resuming after
// ?since=ID:SEQ (repeatable) or the Last-Event-ID header, so a browser EventSource
// that reconnects by itself picks up where it left off.
func (h *Hub) ServeSSE(w http.ResponseWriter, r *http.Request) {
	t := tenant.FromContext(r.Context())
	tok := tokenOf(r)
	if tok == "" {
		rpc.WriteHTTPError(w, errs.E(errs.Unauthenticated, "an SSE stream needs a token (Authorization: Bearer or ?token=)"))
		return
	}
	pr, err := h.auth.VerifyToken(r.Context(), t, tok)
	if err != nil {
		h.metrics.refused.WithLabelValues("bad_token").Inc()
		rpc.WriteHTTPError(w, err)
		return
	}
	if h.bus == nil {
		rpc.WriteHTTPError(w, errs.E(errs.NotFound, "events are not served here"))
		return
	}
	q := r.URL.Query()
	ids := q["contextId"]
	since, err := parseSince(q["since"], r.Header.Get("Last-Event-ID"))
	if err != nil {
		rpc.WriteHTTPError(w, err)
		return
	}
	if err := h.reserve(t.PubKey); err != nil {
		w.Header().Set("Retry-After", "1")
		rpc.WriteHTTPError(w, err)
		return
	}
	defer h.release(t.PubKey)
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		rpc.WriteHTTPError(w, errs.E(errs.Internal, "cannot stream on this connection"))
		return
	}
	defer conn.Close()
	st := h.newStream(pr, conn)
	if !h.addStream(st) {
		return
	}
	defer h.removeStream(st)
	connect, _ := json.Marshal(st.id)
	head := "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n" +
		"X-Accel-Buffering: no\r\nConnection: close\r\n\r\n" +
		"retry: 1000\nevent: connect\ndata: " + string(connect) + "\n\n"
	if err := st.out.writeNow([]byte(head), h.cfg.WriteTimeout); err != nil {
		st.close(DisconnectWriteError)
		return
	}
	if len(ids) > 0 {
		st.out.hold()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 30*time.Second)
		res, err := rpc.Subscribe(ctx, h.svc, st.subs, t.PubKey, rpc.CallerOf(pr), ids, since)
		cancel()
		var rec []byte
		if err != nil {
			rec = record("error", map[string]any{"error": rpc.ToWire(err)})
		} else {
			rec = record("subscribed", res)
		}
		st.out.releaseFront(rec) // ahead of the events the subscription replayed meanwhile
	}
	st.mu.Lock()
	if !st.closed {
		st.pingTimer = time.AfterFunc(h.cfg.PingInterval, st.ping)
		st.expiry = time.AfterFunc(time.Until(pr.ExpiresAt), func() { st.close(DisconnectTokenExpired) })
	}
	st.mu.Unlock()
	st.read()
}

// record is one SSE record of kind with v as its JSON data.
func record(kind string, v any) []byte {
	data, _ := json.Marshal(v)
	return []byte("event: " + kind + "\ndata: " + string(data) + "\n\n")
}

// parseSince reads resume points "ID:SEQ"; Last-Event-ID's comes last and wins.
func parseSince(vals []string, lastEventID string) (map[string]uint64, error) {
	if lastEventID != "" {
		vals = append(vals, lastEventID)
	}
	if len(vals) == 0 {
		return nil, nil
	}
	out := make(map[string]uint64, len(vals))
	for _, v := range vals {
		i := strings.LastIndexByte(v, ':')
		if i <= 0 {
			return nil, errs.Param("since", "%q is not <contextId>:<seq>", v)
		}
		digits := v[i+1:]
		seq, err := strconv.ParseUint(digits, 10, 64)
		if err != nil || (len(digits) > 1 && digits[0] == '0') { // seqs are written without leading zeros
			return nil, errs.Param("since", "%q is not <contextId>:<seq>", v)
		}
		out[v[:i]] = seq
	}
	return out, nil
}

func (h *Hub) newStream(pr *tenant.Principal, conn net.Conn) *stream {
	var b [16]byte
	_, _ = rand.Read(b[:])
	st := &stream{id: hex.EncodeToString(b[:]), hub: h, principal: pr, conn: conn}
	st.out.init(h, h.nextID.Add(1), conn, st.close)
	st.subs = events.NewSubscriptions(h.bus, h.history, pr.Tenant.PubKey, h.cfg.MaxSubscriptions, st.deliver)
	return st
}

func (h *Hub) addStream(st *stream) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.streams[st.id] = st
	h.metrics.streams.Inc()
	return true
}

func (h *Hub) removeStream(st *stream) {
	st.close(DisconnectNormal)
	st.subs.Close()
	h.mu.Lock()
	delete(h.streams, st.id)
	h.mu.Unlock()
	h.metrics.streams.Dec()
	st.mu.Lock()
	reason := st.reason
	st.mu.Unlock()
	h.metrics.disconnects.WithLabelValues(reason.Reason).Inc()
}

// deliver queues an event record (shared by every stream) for the next sweep.
func (st *stream) deliver(m *events.Message) bool {
	start, ok := st.out.push(m.Encode(sseRecord), nil, false)
	if start {
		go st.out.write()
	}
	return ok
}

// send writes a record now, ahead of batching.
func (st *stream) send(rec []byte) {
	if start, _ := st.out.push(rec, nil, true); start {
		st.out.write()
	}
}

// ping writes a comment line every ping_interval, which keeps proxies from closing an
// idle stream and finds dead clients.
func (st *stream) ping() {
	st.send([]byte(": ping\n\n"))
	st.mu.Lock()
	if !st.closed {
		st.pingTimer.Reset(st.hub.cfg.PingInterval)
	}
	st.mu.Unlock()
}

// read waits for the client to go: it sends nothing on an SSE stream, so whatever it
// sends is discarded.
func (st *stream) read() {
	buf := make([]byte, 512)
	for {
		if _, err := st.conn.Read(buf); err != nil {
			st.close(DisconnectConnectionLost)
			return
		}
	}
}

func (st *stream) close(d Disconnect) {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return
	}
	st.closed, st.reason = true, d
	if st.pingTimer != nil {
		st.pingTimer.Stop()
	}
	if st.expiry != nil {
		st.expiry.Stop()
	}
	st.mu.Unlock()
	st.out.shut()
	_ = st.conn.Close()
}

// subscriptionRequest is the body of POST /<tenant>/sse/subscription.
type subscriptionRequest struct {
	ID     string `json:"id"`
	Method string `json:"method"`
	Params struct {
		ContextIDs []string          `json:"contextIds"`
		Since      map[string]uint64 `json:"since"`
	} `json:"params"`
}

// maxSubscriptionBody bounds a subscription request.
const maxSubscriptionBody = 256 << 10

// ServeSSESubscription handles POST /<tenant>/sse/subscription {"id", "method":
// "subscribe"|"unsubscribe", "params": {"contextIds", "since"?}} -> {"result": ...}.
// Only the key that opened the stream may change its subscriptions.
func (h *Hub) ServeSSESubscription(w http.ResponseWriter, r *http.Request) {
	t := tenant.FromContext(r.Context())
	tok := rpc.BearerToken(r)
	if tok == "" {
		rpc.WriteHTTPError(w, errs.E(errs.Unauthenticated, "a token is required (Authorization: Bearer)"))
		return
	}
	pr, err := h.auth.VerifyToken(r.Context(), t, tok)
	if err != nil {
		rpc.WriteHTTPError(w, err)
		return
	}
	var req subscriptionRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSubscriptionBody))
	if err := dec.Decode(&req); err != nil {
		rpc.WriteHTTPError(w, errs.E(errs.InvalidParams, "body must be {\"id\", \"method\", \"params\": {\"contextIds\"}}"))
		return
	}
	h.mu.Lock()
	st := h.streams[req.ID]
	h.mu.Unlock()
	if st == nil || st.principal.Tenant.PubKey != t.PubKey {
		rpc.WriteHTTPError(w, errs.E(errs.NotFound, "no open stream %q", req.ID))
		return
	}
	if st.principal.PubKey != pr.PubKey {
		rpc.WriteHTTPError(w, errs.E(errs.Forbidden, "only the key that opened the stream may change its subscriptions"))
		return
	}
	var result any
	switch req.Method {
	case "subscribe":
		result, err = rpc.Subscribe(r.Context(), h.svc, st.subs, t.PubKey, rpc.CallerOf(pr), req.Params.ContextIDs, req.Params.Since)
	case "unsubscribe":
		if len(req.Params.ContextIDs) == 0 {
			err = errs.Param("contextIds", "must name at least one context")
		} else {
			result = rpc.UnsubscribeResult{Unsubscribed: st.subs.Unsubscribe(req.Params.ContextIDs)}
		}
	default:
		err = errs.Param("method", "must be subscribe or unsubscribe")
	}
	if err != nil {
		rpc.WriteHTTPError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{"result": result})
}

// closeStreams ends every SSE stream (at shutdown: their handlers never end alone).
func (h *Hub) closeStreams(d Disconnect) {
	h.mu.Lock()
	all := make([]*stream, 0, len(h.streams))
	for _, st := range h.streams {
		all = append(all, st)
	}
	h.mu.Unlock()
	for _, st := range all {
		st.close(d)
	}
}

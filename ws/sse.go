package ws

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
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

// sseRecord is an event as one SSE record, made once per event for every stream.
var sseRecord = events.NewEncoding(func(m *events.Message) []byte {
	ev := m.JSON()
	b := make([]byte, 0, len(ev)+len(m.Event.ContextID)+48)
	b = append(b, "id: "...)
	b = append(b, m.ID()...)
	b = append(b, "\nevent: message\ndata: "...)
	b = append(b, ev...)
	return append(b, "\n\n"...)
})

// stream is one open SSE connection.
type stream struct {
	id        string
	hub       *Hub
	principal *tenant.Principal
	subs      *events.Subscriptions
	ctx       context.Context
	cancel    context.CancelFunc

	mu     sync.Mutex
	queue  [][]byte
	queued int
	closed bool
	reason Disconnect
	wake   chan struct{}
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
	st := h.newStream(pr)
	if !h.addStream(st) {
		rpc.WriteHTTPError(w, errs.E(errs.Overloaded, "server is shutting down"))
		return
	}
	defer h.removeStream(st)

	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	connect, _ := json.Marshal(st.id)
	hello := "retry: 1000\nevent: connect\ndata: " + string(connect) + "\n\n"
	if _, err := io.WriteString(w, hello); err != nil || rc.Flush() != nil {
		st.close(DisconnectWriteError)
		return
	}
	if len(ids) > 0 {
		res, err := rpc.Subscribe(st.ctx, h.svc, st.subs, t.PubKey, rpc.CallerOf(pr), ids, since)
		if err == nil {
			// The feeds may have queued replayed events already; "subscribed" goes
			// before them (nothing of the queue is written before run).
			err = st.writeResultFirst("subscribed", res)
		}
		if err != nil {
			st.close(DisconnectWriteError)
			return
		}
	}
	st.run(r.Context(), w, rc)
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
		seq, err := strconv.ParseUint(v[i+1:], 10, 64)
		if err != nil {
			return nil, errs.Param("since", "%q is not <contextId>:<seq>", v)
		}
		out[v[:i]] = seq
	}
	return out, nil
}

func (h *Hub) newStream(pr *tenant.Principal) *stream {
	var b [16]byte
	_, _ = rand.Read(b[:])
	ctx, cancel := context.WithCancel(h.root)
	st := &stream{id: hex.EncodeToString(b[:]), hub: h, principal: pr, ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1)}
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

// deliver queues an event record; past the outbound bound the stream ends as slow.
func (st *stream) deliver(m *events.Message) bool {
	return st.push(m.Encode(sseRecord))
}

func (st *stream) push(rec []byte) bool {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return false
	}
	if st.queued+len(rec) > st.hub.cfg.OutboundQueueBytes {
		st.mu.Unlock()
		st.close(DisconnectSlow)
		return false
	}
	st.queue = append(st.queue, rec)
	st.queued += len(rec)
	st.mu.Unlock()
	select {
	case st.wake <- struct{}{}:
	default:
	}
	return true
}

// writeResult queues a record that reports a subscription change made at open.
// writeResultFirst is writeResult for a stream whose writer has not started: the
// record goes ahead of everything queued.
func (st *stream) writeResultFirst(kind string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	rec := []byte("event: " + kind + "\ndata: " + string(data) + "\n\n")
	st.mu.Lock()
	if !st.closed {
		st.queue = append([][]byte{rec}, st.queue...)
		st.queued += len(rec)
	}
	st.mu.Unlock()
	return nil
}

func (st *stream) writeResult(kind string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	st.push([]byte("event: " + kind + "\ndata: " + string(data) + "\n\n"))
	return nil
}

func (st *stream) close(d Disconnect) {
	st.mu.Lock()
	if !st.closed {
		st.closed, st.reason, st.queue = true, d, nil
	}
	st.mu.Unlock()
	st.cancel()
}

// run is the stream's writer: it writes queued records, batched like a session's
// events (at most once per event_write_interval), and a comment line as a heartbeat
// every ping_interval, until the client goes, the stream is closed or the hub stops.
func (st *stream) run(client context.Context, w http.ResponseWriter, rc *http.ResponseController) {
	cfg := &st.hub.cfg
	heartbeat := time.NewTicker(cfg.PingInterval)
	defer heartbeat.Stop()
	var last time.Time
	var batch [][]byte
	for {
		select {
		case <-st.ctx.Done():
			return
		case <-client.Done():
			st.close(DisconnectConnectionLost)
			return
		case <-heartbeat.C:
			st.push([]byte(": ping\n\n"))
			continue
		case <-st.wake:
		}
		if wait := cfg.EventWriteInterval - time.Since(last); !last.IsZero() && wait > 0 {
			select {
			case <-st.ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		st.mu.Lock()
		batch, st.queue = st.queue, batch[:0]
		st.queued = 0
		st.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		_ = rc.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
		for i, rec := range batch {
			if _, err := w.Write(rec); err != nil {
				st.close(DisconnectWriteError)
				return
			}
			batch[i] = nil
		}
		if err := rc.Flush(); err != nil {
			st.close(DisconnectWriteError)
			return
		}
		last = time.Now()
		st.hub.metrics.sent.Add(float64(len(batch)))
	}
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

package ws

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circlegate/circlegate/events"
	"github.com/circlegate/circlegate/rpc"
	"github.com/circlegate/circlegate/tenant"
	"github.com/gorilla/websocket"
)

// session is one WebSocket connection. Its reader goroutine runs while the client is
// active (read.go); a writer goroutine exists only while frames are queued.
type session struct {
	out      outbox // first: its hot fields start the session's first cache line
	id       uint64
	hub      *Hub
	in       decoder      // the client's frames; its buffer only while a reader runs
	lastRead atomic.Int64 // unix nanoseconds of the last read that brought bytes
	lastPing time.Time    // of the keepalive timer only
	peer     *rpc.Peer
	ctx      context.Context
	cancel   context.CancelFunc
	slots    chan struct{} // one per running request
	subs     *events.Subscriptions

	mu     sync.Mutex
	closed bool
	reason Disconnect
	// reading: a reader goroutine runs. polled: the socket was added to the idle
	// poller once.
	reading, polled bool
	// deadline fires at auth_timeout while the session has not authenticated, and
	// then when its token expires (timeout).
	deadline  *time.Timer
	pingTimer *time.Timer
}

func (h *Hub) newSession(conn *websocket.Conn, peer *rpc.Peer) *session {
	ctx, cancel := context.WithCancel(h.root)
	s := &session{
		id: h.nextID.Add(1), hub: h, peer: peer,
		ctx: ctx, cancel: cancel,
		reading: true, // start runs the reader; until then close must not finish it
		slots:   make(chan struct{}, h.cfg.MaxConcurrentRequests),
	}
	s.out.init(h, s.id, conn.NetConn(), s.close)
	peer.OnAuthenticated = s.authenticated
	if h.bus != nil {
		s.subs = events.NewSubscriptions(h.bus, h.history, peer.Tenant.PubKey, h.cfg.MaxSubscriptions, s.deliver)
		peer.Subscriptions = s.subs
	}
	return s
}

// start arms the timers and runs the reader in its own goroutine.
func (s *session) start() {
	cfg := &s.hub.cfg
	now := time.Now()
	s.lastRead.Store(now.UnixNano())
	s.lastPing = now
	s.mu.Lock()
	s.pingTimer = time.AfterFunc(cfg.PingInterval, s.ping)
	wait := cfg.AuthTimeout
	if pr := s.peer.Principal(); pr != nil {
		wait = time.Until(pr.ExpiresAt)
	}
	s.deadline = time.AfterFunc(wait, s.timeout)
	s.mu.Unlock()
	go s.read()
}

// serve runs msg on a serve worker and frees its slot.
func (s *session) serve(msg []byte) {
	defer func() { <-s.slots }()
	s.reply(msg, true)
}

// reply runs msg and writes its reply at once, unless another goroutine is writing:
// this one becomes the writer, so a reply needs no hand-off. The reader, which runs
// inline methods, passes wait false: it never blocks on the socket (outbox.drain).
func (s *session) reply(msg []byte, wait bool) {
	if reply := s.hub.rpc.Handle(s.ctx, s.peer, msg); reply != nil {
		if start, _ := s.out.push(appendHeader(make([]byte, 0, 10), opText, len(reply)), reply, true); start {
			s.out.drain(wait)
		}
	}
}

// deliver queues an event's frame (shared by every subscriber; never modified) for
// the next sweep of the session's flusher (flush.go), which comes at once when the
// flusher has been idle for event_write_interval. It reports false once the session
// is closed, or when it closes it as slow.
func (s *session) deliver(m *events.Message) bool {
	start, ok := s.out.push(m.Encode(eventFrame), nil, false)
	if start {
		go s.out.write()
	}
	return ok
}

// ping is the keepalive timer: it pings the client every ping_interval and closes
// the session as no_pong when no bytes came for ping_interval + pong_timeout. It
// fires at whichever of the two comes first.
func (s *session) ping() {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return
	}
	cfg := &s.hub.cfg
	now := time.Now()
	silent := time.Unix(0, s.lastRead.Load()).Add(cfg.PingInterval + cfg.PongTimeout)
	if !now.Before(silent) {
		s.close(DisconnectNoPong)
		return
	}
	if !now.Before(s.lastPing.Add(cfg.PingInterval)) {
		if err := s.out.writeNow(frame(opPing, nil), cfg.WriteTimeout); err != nil {
			s.close(DisconnectWriteError)
			return
		}
		s.lastPing = now
	}
	next := s.lastPing.Add(cfg.PingInterval)
	if silent.Before(next) {
		next = silent
	}
	s.mu.Lock()
	if !s.closed {
		s.pingTimer.Reset(max(next.Sub(now), time.Millisecond))
	}
	s.mu.Unlock()
}

// timeout closes a session that has not authenticated within auth_timeout (4003), or
// whose token has expired (4501). A session that authenticated again since the timer
// was set waits for its new token's expiry.
func (s *session) timeout() {
	pr := s.peer.Principal()
	if pr == nil {
		s.close(DisconnectAuthTimeout)
		return
	}
	if wait := time.Until(pr.ExpiresAt); wait > 0 {
		s.mu.Lock()
		if !s.closed {
			s.deadline.Reset(wait)
		}
		s.mu.Unlock()
		return
	}
	s.close(DisconnectTokenExpired)
}

// authenticated moves the deadline from auth_timeout to the new token's expiry.
func (s *session) authenticated(pr *tenant.Principal) {
	s.mu.Lock()
	if !s.closed && s.deadline != nil {
		s.deadline.Reset(time.Until(pr.ExpiresAt))
	}
	s.mu.Unlock()
}

// close ends the session once, with reason d: a close frame when the peer can still
// read one, then the connection. A running reader notices and finishes the session;
// a parked one is finished here.
func (s *session) close(d Disconnect) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed, s.reason = true, d
	parked := !s.reading
	if s.pingTimer != nil {
		s.pingTimer.Stop()
	}
	if s.deadline != nil {
		s.deadline.Stop()
	}
	s.mu.Unlock()
	s.out.shut()
	if !sendsFrame(d) {
		_ = s.out.net.Close()
	} else {
		wait := closeFrameWait
		if d == DisconnectSlow { // its writer is stuck on a peer that does not read
			wait = 0
		}
		s.out.closeWith(frame(opClose, websocket.FormatCloseMessage(d.Code, d.Reason)), wait)
	}
	if parked {
		go s.finish() // close may run under locks that finish takes
	}
}

// closeFrameWait bounds how long a close frame waits for a write in progress, such as
// the reply a client has just read while its writer has not yet let go (outbox.closeWith).
const closeFrameWait = 50 * time.Millisecond

// sendsFrame reports whether a close frame should be sent for d: not when the peer
// already closed (its close frame was answered) or the connection broke.
func sendsFrame(d Disconnect) bool {
	switch d {
	case DisconnectNormal, DisconnectConnectionLost, DisconnectWriteError:
		return false
	}
	return true
}

func (s *session) finish() {
	s.cancel()
	if s.subs != nil {
		s.subs.Close()
	}
	s.mu.Lock()
	reason := s.reason
	s.mu.Unlock()
	s.hub.remove(s)
	s.hub.metrics.disconnects.WithLabelValues(reason.Reason).Inc()
	s.hub.log.Debug("session closed", "session", s.id, "tenant", s.peer.Tenant.PubKey, "reason", reason.Reason)
}

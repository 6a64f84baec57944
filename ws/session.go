package ws

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/circlegate/circlegate/events"
	"github.com/circlegate/circlegate/rpc"
	"github.com/circlegate/circlegate/tenant"
	"github.com/gorilla/websocket"
)

// session is one WebSocket connection. Its reader goroutine lives as long as the
// connection; its writer goroutine exists only while frames are queued.
type session struct {
	out    outbox // first: its hot fields start the session's first cache line
	id     uint64
	hub    *Hub
	conn   *websocket.Conn // reads; writes go through out (frame.go)
	peer   *rpc.Peer
	ctx    context.Context
	cancel context.CancelFunc
	slots  chan struct{} // one per running request
	subs   *events.Subscriptions

	mu     sync.Mutex
	closed bool
	reason Disconnect
	// deadline fires at auth_timeout while the session has not authenticated, and
	// then when its token expires (timeout).
	deadline  *time.Timer
	pingTimer *time.Timer
}

func (h *Hub) newSession(conn *websocket.Conn, peer *rpc.Peer) *session {
	ctx, cancel := context.WithCancel(h.root)
	s := &session{
		id: h.nextID.Add(1), hub: h, conn: conn, peer: peer,
		ctx: ctx, cancel: cancel,
		slots: make(chan struct{}, h.cfg.MaxConcurrentRequests),
	}
	s.out.init(h, s.id, conn.NetConn(), s.close)
	peer.OnAuthenticated = s.authenticated
	if h.bus != nil {
		s.subs = events.NewSubscriptions(h.bus, h.history, peer.Tenant.PubKey, h.cfg.MaxSubscriptions, s.deliver)
		peer.Subscriptions = s.subs
	}
	conn.SetPingHandler(func(data string) error {
		if start, _ := s.out.push(frame(opPong, []byte(data)), nil, true); start {
			go s.out.write()
		}
		return nil
	})
	conn.SetCloseHandler(func(code int, text string) error {
		_ = s.out.writeNow(frame(opClose, websocket.FormatCloseMessage(code, "")), time.Second, false)
		return nil
	})
	return s
}

// start arms the timers and runs the reader in its own goroutine.
func (s *session) start() {
	cfg := &s.hub.cfg
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

func (s *session) read() {
	defer s.finish()
	cfg := &s.hub.cfg
	c := s.conn
	c.SetReadLimit(max(cfg.MaxMessageBytes, cfg.OwnerMaxMessageBytes)) // hard cap; see readMessage
	idle := cfg.PingInterval + cfg.PongTimeout
	_ = c.SetReadDeadline(time.Now().Add(idle))
	c.SetPongHandler(func(string) error { return c.SetReadDeadline(time.Now().Add(idle)) })
	for {
		msg, err := s.readMessage()
		if err != nil {
			s.close(readDisconnect(err))
			return
		}
		_ = c.SetReadDeadline(time.Now().Add(idle))
		s.hub.metrics.received.Inc()
		select {
		case s.slots <- struct{}{}:
		case <-s.ctx.Done():
			return
		}
		s.hub.dispatch(func() { s.serve(msg) })
	}
}

// errTooBig is a message over the session's current limit.
var errTooBig = websocket.ErrReadLimit

// readMessage reads one message within the session's limit, which is decided when
// the message starts: max_message_bytes, or owner_max_message_bytes once the session
// has authenticated as a tenant owner (so app.install fits a module of several MiB).
// Only up to the limit is ever buffered.
func (s *session) readMessage() ([]byte, error) {
	_, r, err := s.conn.NextReader()
	if err != nil {
		return nil, err
	}
	limit := s.hub.cfg.MaxMessageBytes
	if pr := s.peer.Principal(); pr != nil && pr.Role() == tenant.RoleOwner {
		limit = s.hub.cfg.OwnerMaxMessageBytes
	}
	msg, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(msg)) > limit {
		return nil, errTooBig
	}
	return msg, nil
}

func (s *session) serve(msg []byte) {
	defer func() { <-s.slots }()
	if reply := s.hub.rpc.Handle(s.ctx, s.peer, msg); reply != nil {
		if start, _ := s.out.push(appendHeader(make([]byte, 0, 10), opText, len(reply)), reply, true); start {
			s.out.write() // this goroutine becomes the writer: no hand-off for a reply
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

func (s *session) ping() {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return
	}
	if err := s.out.writeNow(frame(opPing, nil), s.hub.cfg.WriteTimeout, false); err != nil {
		s.close(DisconnectWriteError)
		return
	}
	s.mu.Lock()
	if !s.closed {
		s.pingTimer.Reset(s.hub.cfg.PingInterval)
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
// read one, then the connection. The reader notices and finishes.
func (s *session) close(d Disconnect) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed, s.reason = true, d
	if s.pingTimer != nil {
		s.pingTimer.Stop()
	}
	if s.deadline != nil {
		s.deadline.Stop()
	}
	s.mu.Unlock()
	s.out.shut()
	if sendsFrame(d) {
		_ = s.out.writeNow(frame(opClose, websocket.FormatCloseMessage(d.Code, d.Reason)), time.Second, true)
	}
	_ = s.conn.Close()
}

// sendsFrame reports whether a close frame should be sent for d: not when the peer
// already closed or the connection broke. (When gorilla already sent 1009 itself, the
// second close frame is refused by gorilla and nothing is written.)
func sendsFrame(d Disconnect) bool {
	switch d {
	case DisconnectNormal, DisconnectConnectionLost, DisconnectWriteError, DisconnectProtocolError:
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

func readDisconnect(err error) Disconnect {
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		return DisconnectNormal
	case errors.Is(err, websocket.ErrReadLimit):
		return DisconnectMessageTooBig
	case errors.As(err, &ne) && ne.Timeout():
		return DisconnectNoPong
	}
	return DisconnectConnectionLost
}

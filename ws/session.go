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
	id     uint64
	hub    *Hub
	conn   *websocket.Conn // reads; writes go to netConn directly (frame.go)
	net    net.Conn
	peer   *rpc.Peer
	ctx    context.Context
	cancel context.CancelFunc
	slots  chan struct{} // one per running request
	subs   *events.Subscriptions

	wmu sync.Mutex // held while writing to net

	mu        sync.Mutex
	queue     net.Buffers // whole frames, or header and payload
	queued    int         // payload bytes in queue
	writing   bool
	urgent    bool          // a reply or control frame is queued: write it at once
	wake      chan struct{} // wakes a writer waiting to batch events
	closed    bool
	reason    Disconnect
	authTimer *time.Timer
	pingTimer *time.Timer
}

func (h *Hub) newSession(conn *websocket.Conn, peer *rpc.Peer) *session {
	ctx, cancel := context.WithCancel(h.root)
	s := &session{
		id: h.nextID.Add(1), hub: h, conn: conn, net: conn.NetConn(), peer: peer,
		ctx: ctx, cancel: cancel,
		slots: make(chan struct{}, h.cfg.MaxConcurrentRequests),
		wake:  make(chan struct{}, 1),
	}
	peer.OnAuthenticated = func(*tenant.Principal) { s.stopAuthTimer() }
	if h.bus != nil {
		s.subs = events.NewSubscriptions(h.bus, h.history, peer.Tenant.PubKey, h.cfg.MaxSubscriptions, s.deliver)
		peer.Subscriptions = s.subs
	}
	conn.SetPingHandler(func(data string) error {
		s.enqueue(frame(opPong, []byte(data)), nil, true)
		return nil
	})
	conn.SetCloseHandler(func(code int, text string) error {
		s.writeControl(opClose, websocket.FormatCloseMessage(code, ""), time.Second, false)
		return nil
	})
	return s
}

// start arms the timers and runs the reader in its own goroutine.
func (s *session) start() {
	cfg := &s.hub.cfg
	s.mu.Lock()
	s.pingTimer = time.AfterFunc(cfg.PingInterval, s.ping)
	if s.peer.Principal() == nil {
		s.authTimer = time.AfterFunc(cfg.AuthTimeout, s.authExpired)
	}
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
		if s.enqueue(appendHeader(make([]byte, 0, 10), opText, len(reply)), reply, true) {
			s.write() // this goroutine becomes the writer: no hand-off for a reply
		}
	}
}

// deliver queues an event's frame (shared by every subscriber; never modified) and
// starts a writer if none runs. It reports false once the session is closed, or when
// it closes it as slow.
func (s *session) deliver(m *events.Message) bool {
	start, ok := s.push(m.Encode(eventFrame), nil, false)
	if start {
		go s.write()
	}
	return ok
}

// enqueue queues a frame (a header and its payload, or a whole frame with a nil
// payload) and reports whether the caller must become (or start) the writer. Urgent
// frames (replies, control) are written at once; events may wait to be batched.
func (s *session) enqueue(header, payload []byte, urgent bool) (startWriter bool) {
	start, _ := s.push(header, payload, urgent)
	return start
}

func (s *session) push(header, payload []byte, urgent bool) (startWriter, ok bool) {
	n := len(header) + len(payload)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false, false
	}
	if s.queued+n > s.hub.cfg.OutboundQueueBytes {
		s.mu.Unlock()
		s.close(DisconnectSlow)
		return false, false
	}
	s.queue = append(s.queue, header)
	if payload != nil {
		s.queue = append(s.queue, payload)
	}
	s.queued += n
	if urgent && !s.urgent {
		s.urgent = true
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	start := !s.writing
	s.writing = true
	s.mu.Unlock()
	return start, true
}

// write drains the queue, then returns; whoever next finds no writer running
// becomes the writer. When only events are queued it writes at most once per
// event_write_interval, so a busy subscriber gets its events in batches of one
// writev instead of one system call each.
func (s *session) write() {
	interval := s.hub.cfg.EventWriteInterval
	var (
		batch net.Buffers
		last  time.Time
		timer *time.Timer
	)
	for {
		s.mu.Lock()
		if s.closed || len(s.queue) == 0 {
			s.writing = false
			s.queue = nil
			s.mu.Unlock()
			return
		}
		if wait := interval - time.Since(last); !s.urgent && !last.IsZero() && wait > 0 {
			s.mu.Unlock()
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-timer.C:
			case <-s.wake:
			case <-s.ctx.Done():
			}
			continue
		}
		batch, s.queue = s.queue, batch[:0]
		frames := len(batch)
		s.queued, s.urgent = 0, false
		select {
		case <-s.wake: // consumed by this write
		default:
		}
		s.mu.Unlock()
		all := batch
		s.wmu.Lock()
		_ = s.net.SetWriteDeadline(time.Now().Add(s.hub.cfg.WriteTimeout))
		err := writeFrames(s.net, batch)
		s.wmu.Unlock()
		if err != nil {
			s.close(DisconnectWriteError)
			return
		}
		clear(all)
		batch = all[:0]
		last = time.Now()
		s.hub.metrics.sent.Add(float64(frames))
	}
}

// writeControl writes one control frame now, under the write lock; with try, only if
// no write is in progress (a session closed as slow cannot take another frame).
func (s *session) writeControl(op byte, payload []byte, timeout time.Duration, try bool) error {
	if try {
		if !s.wmu.TryLock() {
			return nil
		}
	} else {
		s.wmu.Lock()
	}
	defer s.wmu.Unlock()
	_ = s.net.SetWriteDeadline(time.Now().Add(timeout))
	_, err := s.net.Write(frame(op, payload))
	return err
}

func (s *session) ping() {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return
	}
	if err := s.writeControl(opPing, nil, s.hub.cfg.WriteTimeout, false); err != nil {
		s.close(DisconnectWriteError)
		return
	}
	s.mu.Lock()
	if !s.closed {
		s.pingTimer.Reset(s.hub.cfg.PingInterval)
	}
	s.mu.Unlock()
}

func (s *session) authExpired() {
	if s.peer.Principal() == nil {
		s.close(DisconnectAuthTimeout)
	}
}

func (s *session) stopAuthTimer() {
	s.mu.Lock()
	if s.authTimer != nil {
		s.authTimer.Stop()
		s.authTimer = nil // an idle session keeps only what it needs
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
	s.closed, s.reason, s.queue = true, d, nil
	if s.pingTimer != nil {
		s.pingTimer.Stop()
	}
	if s.authTimer != nil {
		s.authTimer.Stop()
	}
	s.mu.Unlock()
	if sendsFrame(d) {
		_ = s.writeControl(opClose, websocket.FormatCloseMessage(d.Code, d.Reason), time.Second, true)
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

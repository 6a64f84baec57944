package ws

import (
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/circlegate/circlegate/internal/rawio"
	"github.com/circlegate/circlegate/tenant"
	"golang.org/x/sys/unix"
)

// A session's reader is a goroutine only while the client is active. It decodes the
// client's frames from a buffer of read_buffer_size (decode.go), runs inline methods
// itself and dispatches every other message to a serve worker. On plain TCP it reads
// without blocking, and parks in the runtime's poller only until reader_idle has
// passed with nothing read; then, with nothing buffered, it arms the hub's idle
// poller (idle_linux.go), returns its buffer to the pool and ends. The client's next
// byte starts a new reader. So an idle session costs no goroutine stack and no read
// buffer, only its structs and its socket: 6.4 to 7.7 KiB instead of 11 to 12.5 KiB
// (docs/benchmarks.md).

// read is the session's reader goroutine; s.reading is true while it runs.
func (s *session) read() {
	d := &s.in
	if d.buf == nil { // a new session, or one woken by the idle poller
		d.buf = *s.hub.readBufs.Get().(*[]byte)
		if s.out.raw != nil && s.hub.cfg.ReaderIdle > 0 {
			_ = s.out.net.SetReadDeadline(time.Now().Add(s.hub.cfg.ReaderIdle))
		}
	}
	for {
		op, p, err := d.next(s.limit())
		if err != nil {
			s.end(frameDisconnect(err))
			return
		}
		switch op {
		case 0: // more bytes are needed
			parked, err := s.fill()
			if err != nil { // the peer went away, or the session was closed
				s.end(DisconnectConnectionLost)
				return
			}
			if parked {
				return
			}
		case opText, opBinary:
			s.hub.metrics.received.Inc()
			if s.hub.rpc.Inline(p) {
				s.reply(p, false)
				continue
			}
			select {
			case s.slots <- struct{}{}:
			case <-s.ctx.Done():
				s.end(DisconnectNormal)
				return
			}
			s.hub.dispatch(func() { s.serve(p) })
		case opPing:
			if start, _ := s.out.push(frame(opPong, p), nil, true); start {
				s.out.drain(false)
			}
		case opClose:
			why, reply, err := closeReply(p)
			if err != nil {
				s.end(frameDisconnect(err))
				return
			}
			_ = s.out.writeNow(frame(opClose, reply), time.Second)
			s.end(why)
			return
		}
	}
}

// limit is the size limit of a message that starts now: max_message_bytes, or
// owner_max_message_bytes once the session has authenticated as a tenant owner (so
// app.install fits a module of several MiB).
func (s *session) limit() int64 {
	if pr := s.peer.Principal(); pr != nil && pr.Role() == tenant.RoleOwner {
		return s.hub.cfg.OwnerMaxMessageBytes
	}
	return s.hub.cfg.MaxMessageBytes
}

// fill reads what the client has sent into the decoder. On plain TCP, when nothing
// has come for reader_idle and nothing is buffered, it parks the session in the idle
// poller instead and reports parked: the reader must then end at once.
func (s *session) fill() (parked bool, err error) {
	d := &s.in
	if s.out.raw == nil { // TLS: a blocking read; the reader stays
		n, err := s.out.net.Read(d.space())
		if n > 0 {
			d.filled(n)
			s.lastRead.Store(time.Now().UnixNano())
		}
		if n > 0 || err == nil {
			return false, nil
		}
		return false, err
	}
	idle := s.hub.cfg.ReaderIdle
	for {
		b := d.space()
		var n int
		var rerr error
		err := s.out.raw.Read(func(fd uintptr) bool {
			// A raw read (internal/rawio): no hand-off of the processor around it.
			var errno syscall.Errno
			n, errno = rawio.Read(fd, b)
			rerr = nil
			if errno != 0 {
				rerr = errno
			}
			return errno != unix.EAGAIN
		})
		switch {
		case err == nil && rerr == nil && n > 0:
			d.filled(n)
			s.lastRead.Store(time.Now().UnixNano())
			return false, nil
		case err == nil && rerr == nil:
			return false, io.EOF
		case err == nil:
			return false, rerr
		case !errors.Is(err, os.ErrDeadlineExceeded):
			return false, err
		}
		// The read deadline passed: park if nothing came for reader_idle, else wait
		// until reader_idle after the last read. (The deadline is not moved on
		// every read: that would cost a timer update per message.)
		now := time.Now()
		quiet := now.Sub(time.Unix(0, s.lastRead.Load()))
		if quiet >= idle && d.idle() && s.park() {
			return true, nil
		}
		_ = s.out.net.SetReadDeadline(now.Add(max(idle-quiet, idle/8)))
	}
}

// park hands an idle session to the hub's idle poller: it reports false when the
// session is closed (the reader then finds its socket closed) or the socket cannot
// be armed, and the reader goes on.
func (s *session) park() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if err := s.hub.idle.arm(s.out.raw, s.id, !s.polled); err != nil {
		return false
	}
	s.polled, s.reading = true, false
	s.putBuf()
	return true
}

// putBuf returns the reader's buffer to the pool: parked, nothing in it is
// undecoded; ended, nothing in it matters.
func (s *session) putBuf() {
	b := s.in.buf[:cap(s.in.buf)]
	s.hub.readBufs.Put(&b)
	s.in.buf, s.in.r, s.in.w = nil, 0, 0
}

// wake starts a reader for a parked session whose client sent something.
func (s *session) wake() {
	s.mu.Lock()
	if s.closed || s.reading {
		s.mu.Unlock()
		return
	}
	s.reading = true
	s.mu.Unlock()
	go s.read()
}

// end closes the session with d, from its reader, and finishes it.
func (s *session) end(d Disconnect) {
	s.close(d)
	s.putBuf()
	s.finish()
}

// closeReply decodes a client's close frame payload and returns the reason to
// record and the payload of the close frame to send back (the client's code).
func closeReply(p []byte) (Disconnect, []byte, error) {
	switch {
	case len(p) == 0:
		return DisconnectNormal, nil, nil
	case len(p) == 1:
		return Disconnect{}, nil, errProtocol("close frame with a 1-byte payload")
	}
	code := int(p[0])<<8 | int(p[1])
	if !validCloseCode(code) {
		return Disconnect{}, nil, errProtocol("invalid close code")
	}
	return DisconnectNormal, []byte{p[0], p[1]}, nil
}

// validCloseCode reports whether a peer may send code (RFC 6455 section 7.4).
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// frameDisconnect is the reason for a frame the decoder refused.
func frameDisconnect(err error) Disconnect {
	if errors.Is(err, errTooBig) {
		return DisconnectMessageTooBig
	}
	return DisconnectProtocolError
}

// newReadBufs pools the sessions' read buffers of size bytes.
func newReadBufs(size int) *sync.Pool {
	return &sync.Pool{New: func() any {
		b := make([]byte, size)
		return &b
	}}
}

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"github.com/gorilla/websocket"
)

// The paced loads (whoami, query) drive their sockets from one locked thread with
// epoll, after gorilla/websocket has opened and authenticated the sessions: with
// Go's netpoller every request would cost a goroutine wake-up and a futex, and an
// extra read that finds nothing, which on this VM is CPU taken from the gateway.

// rawSocket is a client WebSocket on a non-blocking file descriptor of its own.
type rawSocket struct {
	fd   int
	mask [4]byte
	in   []byte // bytes read and not yet parsed
	out  []byte // the frame being written
}

// detach takes conn's socket away from gorilla and the Go runtime: it duplicates the
// descriptor (non-blocking, like the original) and closes conn's, so the runtime's
// poller forgets it. conn must have nothing buffered, which holds after a request
// and its reply.
func detach(conn *websocket.Conn) (*rawSocket, error) {
	return detachConn(conn.NetConn())
}

// detachConn takes a TCP connection away from the Go runtime, as detach does.
func detachConn(c net.Conn) (*rawSocket, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil, fmt.Errorf("detach: %T is not a TCP connection", c)
	}
	fd, err := dupSocket(tc)
	if err != nil {
		return nil, err
	}
	_ = tc.Close() // the duplicate keeps the connection open
	s := &rawSocket{fd: fd, in: make([]byte, 0, 16<<10)}
	_, _ = rand.Read(s.mask[:])
	return s, nil
}

// writeText writes payload as one masked text frame. A full send buffer is an error:
// at the loads' rates it means the gateway stopped reading.
func (s *rawSocket) writeText(payload []byte) error {
	return s.writeFrame(0x1, payload)
}

func (s *rawSocket) writeFrame(op byte, payload []byte) error {
	b := append(s.out[:0], 0x80|op)
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = binary.BigEndian.AppendUint16(append(b, 0x80|126), uint16(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 0x80|127), uint64(n))
	}
	b = append(b, s.mask[:]...)
	start := len(b)
	b = append(b, payload...)
	for i := range b[start:] {
		b[start+i] ^= s.mask[i&3]
	}
	s.out = b
	return s.write(b)
}

// write writes all of b. A full send buffer is an error (see writeText).
func (s *rawSocket) write(b []byte) error {
	for len(b) > 0 {
		n, err := syscall.Write(s.fd, b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// read appends what the socket has to s.in and returns the time the read returned;
// EAGAIN reads nothing. EOF and read errors are errors.
func (s *rawSocket) read() (time.Time, error) {
	if cap(s.in)-len(s.in) < 4096 {
		s.in = append(make([]byte, 0, 2*cap(s.in)), s.in...)
	}
	n, err := syscall.Read(s.fd, s.in[len(s.in):cap(s.in)])
	now := time.Now()
	switch {
	case err == syscall.EAGAIN || err == syscall.EINTR:
		return now, nil
	case err != nil:
		return now, err
	case n == 0:
		return now, errors.New("connection closed by the gateway")
	}
	s.in = s.in[:len(s.in)+n]
	return now, nil
}

// readFrames reads what the socket has and passes each complete text message to
// onText with the time the read returned; pings are answered, pongs ignored. A
// close frame, EOF or a read error ends the socket (an error).
func (s *rawSocket) readFrames(onText func(msg []byte, now time.Time)) error {
	now, err := s.read()
	if err != nil {
		return err
	}
	return s.frames(onText, now)
}

// frames passes each complete text message in s.in to onText, answers pings, and
// keeps the incomplete rest.
func (s *rawSocket) frames(onText func(msg []byte, now time.Time), now time.Time) error {
	b := s.in
	for {
		op, payload, size, err := nextWSFrame(b)
		if err != nil {
			return err
		}
		if size == 0 {
			break
		}
		b = b[size:]
		switch op {
		case 0x1:
			onText(payload, now)
		case 0x8:
			e := &closedError{}
			if len(payload) >= 2 {
				e.code, e.reason = int(binary.BigEndian.Uint16(payload)), string(payload[2:])
			}
			return e
		case 0x9:
			if err := s.writeFrame(0xA, payload); err != nil {
				return err
			}
		case 0xA:
		default:
			return fmt.Errorf("unexpected frame: opcode %d", op)
		}
	}
	s.in = append(s.in[:0], b...)
	return nil
}

// close sends a normal close frame and closes the descriptor.
func (s *rawSocket) close() {
	_ = s.writeFrame(0x8, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	_ = syscall.Close(s.fd)
}

// poller waits for readable sockets with epoll_pwait2, whose timeout is in
// nanoseconds (epoll_wait's is in milliseconds, too coarse to pace requests).
type poller struct {
	fd     int
	events []syscall.EpollEvent
}

// sysEpollPwait2 is epoll_pwait2's number on linux/amd64 (Linux 5.11 and later).
const sysEpollPwait2 = 441

func newPoller(socks []*rawSocket) (*poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	p := &poller{fd: fd, events: make([]syscall.EpollEvent, 128)}
	for i, s := range socks {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(i)}
		if err := syscall.EpollCtl(fd, syscall.EPOLL_CTL_ADD, s.fd, &ev); err != nil {
			p.close()
			return nil, err
		}
	}
	return p, nil
}

// wait waits up to d for readable sockets and calls ready with the index of each.
func (p *poller) wait(d time.Duration, ready func(i int)) error {
	ts := syscall.NsecToTimespec(int64(max(d, 0)))
	n, _, errno := syscall.Syscall6(sysEpollPwait2, uintptr(p.fd), uintptr(unsafe.Pointer(&p.events[0])),
		uintptr(len(p.events)), uintptr(unsafe.Pointer(&ts)), 0, 0)
	switch {
	case errno == syscall.EINTR:
		return nil
	case errno != 0:
		return fmt.Errorf("epoll_pwait2: %w", errno)
	}
	for _, ev := range p.events[:n] {
		ready(int(ev.Fd))
	}
	return nil
}

func (p *poller) close() { _ = syscall.Close(p.fd) }

// add watches s for reading as socket i. A closed descriptor leaves the set by itself.
func (p *poller) add(s *rawSocket, i int) error {
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(i)}
	return syscall.EpollCtl(p.fd, syscall.EPOLL_CTL_ADD, s.fd, &ev)
}

// dialRaw connects to remote from local (port 0) with a blocking connect, which on
// loopback completes within the call, and returns the socket non-blocking with
// TCP_NODELAY, as the gateway's clients have it.
func dialRaw(local, remote *syscall.SockaddrInet4) (*rawSocket, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	s := &rawSocket{fd: fd, in: make([]byte, 0, 4096)}
	for _, step := range []func() error{
		func() error { return syscall.Bind(fd, local) },
		func() error { return syscall.Connect(fd, remote) },
		func() error { return syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1) },
		func() error { return syscall.SetNonblock(fd, true) },
	} {
		if err := step(); err != nil {
			_ = syscall.Close(fd)
			return nil, err
		}
	}
	_, _ = rand.Read(s.mask[:])
	return s, nil
}

// closedLoops runs one closed loop per socket from the calling thread: each loop has
// one request outstanding, and the pass that reads its reply writes its next request,
// until the end time; then the replies still outstanding are awaited until the
// deadline.
type closedLoops struct {
	socks []*rawSocket
	// send writes loop k's next request.
	send func(k int) error
	// receive consumes the complete replies in socks[k].in, read at now, and returns
	// how many there were (0 while a reply is incomplete).
	receive func(k int, now time.Time) (int, error)
	// fail reports that loop k ended with err and its request unanswered.
	fail func(k int, err error)
}

func (c *closedLoops) run(ctx context.Context, start, end, deadline time.Time) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	poll, err := newPoller(c.socks)
	if err != nil {
		return err
	}
	defer poll.close()
	if err := sleep(ctx, time.Until(start)); err != nil {
		return err
	}
	open := make([]bool, len(c.socks))
	n := 0
	next := func(k int) {
		if !time.Now().Before(end) {
			return
		}
		if err := c.send(k); err != nil {
			c.fail(k, fmt.Errorf("send: %w", err))
			return
		}
		open[k] = true
		n++
	}
	for k := range c.socks {
		next(k)
	}
	for n > 0 && ctx.Err() == nil && time.Now().Before(deadline) {
		err := poll.wait(time.Until(deadline), func(k int) {
			if !open[k] {
				return
			}
			now, err := c.socks[k].read()
			replies := 0
			if err == nil {
				replies, err = c.receive(k, now)
			}
			if err != nil {
				open[k] = false
				n--
				c.fail(k, err)
				return
			}
			if replies > 0 {
				open[k] = false
				n--
				next(k)
			}
		})
		if err != nil {
			return err
		}
	}
	for k, o := range open {
		if o {
			c.fail(k, errors.New("no reply before the deadline"))
		}
	}
	return nil
}

// closedError is the gateway's close frame.
type closedError struct {
	code   int
	reason string
}

func (e *closedError) Error() string {
	return fmt.Sprintf("closed by the gateway: %d %s", e.code, e.reason)
}

// parseResponse parses one whole HTTP/1.1 response with a Content-Length (the
// gateway's replies to webhooks) at the start of b and returns its size; ok is false
// while it is incomplete.
func parseResponse(b []byte) (status int, body []byte, size int, ok bool, err error) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		return 0, nil, 0, false, nil
	}
	line, headers, _ := bytes.Cut(b[:end], []byte("\r\n"))
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, nil, 0, false, fmt.Errorf("bad status line %.100q", line)
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, nil, 0, false, fmt.Errorf("bad status line %.100q", line)
	}
	n := -1
	for _, h := range bytes.Split(headers, []byte("\r\n")) {
		k, v, _ := bytes.Cut(h, []byte(":"))
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if n, err = strconv.Atoi(string(bytes.TrimSpace(v))); err != nil || n < 0 {
				return 0, nil, 0, false, fmt.Errorf("bad Content-Length %q", v)
			}
		case bytes.EqualFold(k, []byte("Transfer-Encoding")), bytes.EqualFold(k, []byte("Connection")) && bytes.EqualFold(bytes.TrimSpace(v), []byte("close")):
			return 0, nil, 0, false, fmt.Errorf("unexpected header %q", h)
		}
	}
	if n < 0 {
		return 0, nil, 0, false, errors.New("a response without Content-Length")
	}
	if len(b) < end+4+n {
		return 0, nil, 0, false, nil
	}
	return status, b[end+4 : end+4+n], end + 4 + n, true, nil
}

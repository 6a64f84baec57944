package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The subscribers of the fan-out scenarios are read by one goroutine per worker
// process, not one per socket: 10,000 sockets read by 10,000 goroutines cost the load
// generators nearly half of this machine (a netpoller wake-up, a goroutine switch and
// a small read per batch), CPU the gateway then lacks. Here epoll says which sockets
// hold data; each gets one read into a large shared buffer; whole frames (WebSocket)
// or lines (SSE) are checked in place, with no allocation per frame; a frame a read
// cuts off waits in the socket's carry for the next read. Every delivery is still
// checked: its seq must follow the one before (no gap, no duplicate, no reordering),
// and latency runs from the event's tx time to the read that brought it.

// fanoutReadBuf is the shared read buffer; fanoutMaxFrame bounds one frame or line
// (an event is about 300 bytes), so a carry always leaves most of the buffer free.
const (
	fanoutReadBuf  = 256 << 10
	fanoutMaxFrame = 64 << 10
)

// wsEventPrefix starts every event notification the gateway sends (ws/frame.go).
var wsEventPrefix = []byte(`{"jsonrpc":"2.0","method":"event","params":{`)

// fanoutSub is one subscriber's socket and counts.
type fanoutSub struct {
	fd     int
	carry  []byte // the start of a frame or line that the last read cut off
	last   uint64 // seq of the last event, 0 before the first
	events int
	errors int // gaps, duplicates, reorderings, unreadable or unexpected frames
	done   bool
}

// fanoutReader reads the subscriber sockets of one worker.
type fanoutReader struct {
	epfd    int
	sse     bool
	subs    []fanoutSub
	open    int
	buf     []byte
	count   int     // deliveries seen, for sampling
	latency []int64 // one sample per fanoutSample deliveries, nanoseconds
}

// newFanoutReader takes over conns: each socket is duplicated into an epoll set of
// the reader's own and the net.Conn closed, so that Go's netpoller no longer watches
// it. pending[i], if any, is what a reader of conn i had buffered beyond the
// handshake.
func newFanoutReader(conns []net.Conn, pending [][]byte, sse bool) (*fanoutReader, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	r := &fanoutReader{epfd: epfd, sse: sse, subs: make([]fanoutSub, len(conns)), buf: make([]byte, fanoutReadBuf)}
	for i, c := range conns {
		fd, err := dupSocket(c)
		if err != nil {
			r.close()
			return nil, err
		}
		c.Close()
		r.subs[i] = fanoutSub{fd: fd, carry: make([]byte, 0, 1024)}
		if i < len(pending) {
			r.subs[i].carry = append(r.subs[i].carry, pending[i]...)
		}
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(i)}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			r.close()
			return nil, err
		}
		r.open++
	}
	return r, nil
}

// dupSocket returns a non-blocking duplicate of c's file descriptor.
func dupSocket(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("%T has no file descriptor", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	return fd, unix.SetNonblock(fd, true)
}

// run reads until end (or until every socket has closed). It does not sleep in
// epoll_wait to be woken by each socket that gets data: it takes whatever is ready,
// then pauses for fanoutPoll, so that the data of many sockets (and of several
// writes to one) is read per wake-up. This costs each delivery up to fanoutPoll of
// measured latency; a wake-up per socket would cost this machine's two cores, which
// the gateway shares, several microseconds per write.
func (r *fanoutReader) run(end time.Time) {
	ready := make([]unix.EpollEvent, 1024)
	for r.open > 0 && time.Now().Before(end) {
		n, err := epollPoll(r.epfd, ready)
		if err != nil {
			return
		}
		for _, ev := range ready[:n] {
			if s := &r.subs[ev.Fd]; !s.done {
				r.read(s)
			}
		}
		if n < len(ready) {
			time.Sleep(fanoutPoll)
		}
	}
}

// fanoutPoll is how long the reader pauses when it has read everything ready.
const fanoutPoll = time.Millisecond

// epollPoll returns the ready events without waiting (so a raw system call: it never
// blocks the thread).
func epollPoll(epfd int, ready []unix.EpollEvent) (int, error) {
	for {
		n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_WAIT, uintptr(epfd), uintptr(unsafe.Pointer(&ready[0])), uintptr(len(ready)), 0, 0, 0)
		switch errno {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		}
		return 0, errno
	}
}

// read takes what one socket holds and checks the whole frames or lines in it.
func (r *fanoutReader) read(s *fanoutSub) {
	c := copy(r.buf, s.carry)
	n, err := rawRead(s.fd, r.buf[c:])
	switch {
	case err == unix.EAGAIN, err == unix.EINTR:
		return
	case err != nil || n <= 0:
		r.drop(s)
		return
	}
	now := time.Now().UnixNano()
	b := r.buf[:c+n]
	var used int
	if r.sse {
		used = r.sseLines(s, b, now)
	} else {
		used = r.wsFrames(s, b, now)
	}
	if s.done {
		return
	}
	if len(b)-used > fanoutMaxFrame {
		s.errors++
		r.drop(s)
		return
	}
	s.carry = append(s.carry[:0], b[used:]...)
}

// rawRead reads a non-blocking socket without the scheduler's hand-off around the
// system call.
func rawRead(fd int, b []byte) (int, error) {
	n, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// wsFrames checks the whole server frames at the start of b and returns the bytes
// they take: text frames must be events, pings are answered, a close frame ends the
// subscriber.
func (r *fanoutReader) wsFrames(s *fanoutSub, b []byte, now int64) int {
	off := 0
	for !s.done {
		op, payload, n, err := nextWSFrame(b[off:])
		if err != nil {
			s.errors++
			r.drop(s)
			break
		}
		if n == 0 {
			break
		}
		off += n
		switch op {
		case 0x1:
			if ev, ok := bytes.CutPrefix(payload, wsEventPrefix); ok {
				r.event(s, ev, now)
			} else {
				s.errors++ // no reply is expected while events flow
			}
		case 0x9: // ping: answer with a pong, masked with a zero key
			var pong [6 + 125]byte
			pong[0], pong[1] = 0x8A, 0x80|byte(len(payload))
			m := copy(pong[6:], payload)
			_, _ = unix.Write(s.fd, pong[:6+m])
		case 0x8:
			r.drop(s)
		}
	}
	return off
}

// errFrame is a frame no gateway sends: masked, fragmented, or larger than
// fanoutMaxFrame.
var errFrame = errors.New("unexpected WebSocket frame")

// nextWSFrame returns the first whole frame of b, or n == 0 when b holds only part
// of one.
func nextWSFrame(b []byte) (op byte, payload []byte, n int, err error) {
	if len(b) < 2 {
		return 0, nil, 0, nil
	}
	if b[0]&0x80 == 0 || b[0]&0x0F == 0 || b[1]&0x80 != 0 {
		return 0, nil, 0, errFrame
	}
	size, h := uint64(b[1]&0x7F), 2
	switch size {
	case 126:
		if len(b) < 4 {
			return 0, nil, 0, nil
		}
		size, h = uint64(binary.BigEndian.Uint16(b[2:4])), 4
	case 127:
		if len(b) < 10 {
			return 0, nil, 0, nil
		}
		size, h = binary.BigEndian.Uint64(b[2:10]), 10
	}
	if size > fanoutMaxFrame {
		return 0, nil, 0, errFrame
	}
	if uint64(len(b)-h) < size {
		return 0, nil, 0, nil
	}
	end := h + int(size)
	return b[0] & 0x0F, b[h:end], end, nil
}

// sseLines checks the whole lines at the start of b and returns the bytes they
// take: each "data: {" line is an event (the other lines are the records' ids,
// types, separators and ": ping" comments).
func (r *fanoutReader) sseLines(s *fanoutSub, b []byte, now int64) int {
	off := 0
	for {
		i := bytes.IndexByte(b[off:], '\n')
		if i < 0 {
			return off
		}
		line := b[off : off+i]
		off += i + 1
		if ev, ok := bytes.CutPrefix(line, []byte("data: {")); ok {
			r.event(s, ev, now)
		}
	}
}

// event checks one delivery: ev is the event's JSON (from just after its opening
// brace) up to its end.
func (r *fanoutReader) event(s *fanoutSub, ev []byte, now int64) {
	seq, ms, ok := eventSeqTime(ev)
	if !ok {
		s.errors++
		return
	}
	if s.last != 0 && seq != s.last+1 {
		s.errors++
	}
	s.last = seq
	s.events++
	r.count++
	if r.count%fanoutSample == 1 {
		r.latency = append(r.latency, now-int64(ms)*int64(time.Millisecond))
	}
}

// eventSeqTime finds an event's seq (its first "seq" field: the only one before any
// app data) and its time (the last field, so the number that ends it).
func eventSeqTime(ev []byte) (seq, ms uint64, ok bool) {
	const key = `"seq":`
	i := bytes.Index(ev, []byte(key))
	if i < 0 {
		return 0, 0, false
	}
	seq, n := leadingUint(ev[i+len(key):])
	if n == 0 {
		return 0, 0, false
	}
	e := len(ev)
	for e > 0 && ev[e-1] == '}' {
		e--
	}
	d := e
	for d > 0 && ev[d-1] >= '0' && ev[d-1] <= '9' {
		d--
	}
	if d == e || !bytes.HasSuffix(ev[:d], []byte(`"time":`)) {
		return 0, 0, false
	}
	ms, _ = leadingUint(ev[d:e])
	return seq, ms, true
}

// leadingUint parses the decimal digits at the start of b (at most 19) and returns
// the value and how many digits there were.
func leadingUint(b []byte) (uint64, int) {
	var v uint64
	n := 0
	for n < len(b) && n < 19 && b[n] >= '0' && b[n] <= '9' {
		v = v*10 + uint64(b[n]-'0')
		n++
	}
	return v, n
}

// drop stops reading a subscriber whose socket closed or broke.
func (r *fanoutReader) drop(s *fanoutSub) {
	if s.done {
		return
	}
	s.done = true
	_ = unix.EpollCtl(r.epfd, unix.EPOLL_CTL_DEL, s.fd, nil)
	_ = unix.Close(s.fd)
	s.fd = -1
	r.open--
}

// report adds up the subscribers' counts.
func (r *fanoutReader) report(start time.Time) report {
	rep := report{Phase: "done", Elapsed: time.Since(start), Latency: r.latency}
	for _, s := range r.subs {
		rep.OK += s.events
		rep.Errors += s.errors
	}
	return rep
}

// close releases every socket and the epoll set.
func (r *fanoutReader) close() {
	for i := range r.subs {
		if s := &r.subs[i]; !s.done && s.fd > 0 {
			r.drop(s)
		}
	}
	_ = unix.Close(r.epfd)
}

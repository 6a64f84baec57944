package ws

import (
	"net"
	"sync"
	"syscall"
	"time"
)

// outbox is the write side of one connection, WebSocket session or SSE stream: a
// bounded buffer of whole frames, written with one system call per batch. Frames are
// copied in (an event's frame is encoded once and copied into each subscriber's
// buffer: a memmove, far cheaper than the vectored write's per-buffer setup). Replies
// go out at once on the goroutine that made them; events wait for the next sweep of
// a flusher (flush.go).
type outbox struct {
	hub   *Hub
	id    uint64
	net   net.Conn
	raw   syscall.RawConn // for non-blocking writes on plain TCP; nil on TLS
	fail  func(Disconnect)
	wmu   sync.Mutex // held while writing to net
	mu    sync.Mutex
	queue []byte // whole frames; from bufPool, back to it once written
	count int    // frames in queue
	// writing: a writer (a goroutine, or a sweep) owns the queue.
	writing, dirty, closed bool
}

func (o *outbox) init(h *Hub, id uint64, c net.Conn, fail func(Disconnect)) {
	o.hub, o.id, o.net, o.fail = h, id, c, fail
	if tc, ok := c.(*net.TCPConn); ok {
		o.raw, _ = tc.SyscallConn()
	}
}

// push queues a frame (a header and its payload, or a whole frame with a nil
// payload). An urgent frame (a reply, a pong) reports startWriter when the caller
// must become (or start) the writer; events are left to the sweeps, unless they
// fill the queue before the next sweep, which then starts a writer at once. ok is
// false once the outbox is shut, or when the queue passes its bound while a write
// is already in progress (the peer does not read fast enough): the connection is
// then closed as slow.
func (o *outbox) push(header, payload []byte, urgent bool) (startWriter, ok bool) {
	n := len(header) + len(payload)
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return false, false
	}
	full := len(o.queue)+n > o.hub.cfg.OutboundQueueBytes
	if full && o.writing {
		o.mu.Unlock()
		o.fail(DisconnectSlow)
		return false, false
	}
	defer o.mu.Unlock()
	if o.queue == nil {
		o.queue = getBuf(n)
	}
	o.queue = append(append(o.queue, header...), payload...)
	o.count++
	switch {
	case o.writing: // the running writer takes it
		return false, true
	case urgent || full:
		o.writing = true
		return true, true
	}
	o.markLocked()
	return false, true
}

// hold keeps the sweeps off the queue (as if a write were in progress) until
// releaseFront: what is pushed meanwhile waits behind the frame releaseFront puts first.
func (o *outbox) hold() {
	o.mu.Lock()
	o.writing = true
	o.mu.Unlock()
}

// releaseFront puts a whole frame ahead of everything queued since hold, and writes
// the queue (an SSE stream's subscribe result, which the events its subscriptions
// replayed meanwhile must follow).
func (o *outbox) releaseFront(b []byte) {
	o.mu.Lock()
	if !o.closed {
		q := append(append(getBuf(len(b)+len(o.queue)), b...), o.queue...)
		putBuf(o.queue)
		o.queue = q
		o.count++
	}
	o.mu.Unlock()
	o.write() // drains the queue, then ends the hold
}

// shut drops the queue; later pushes fail.
func (o *outbox) shut() {
	o.mu.Lock()
	o.closed, o.queue = true, nil
	o.mu.Unlock()
}

// take removes the queue for writing; o.mu is held.
func (o *outbox) take() ([]byte, int) {
	batch, count := o.queue, o.count
	o.queue, o.count = nil, 0
	return batch, count
}

// done counts a written batch and gives its buffer back.
func (o *outbox) done(batch []byte, count int) {
	o.hub.metrics.sent.Add(float64(count))
	o.hub.metrics.writes.Inc()
	putBuf(batch)
}

// Queue buffers are shared through a pool, so an idle connection holds none and a
// busy one does not grow a fresh buffer for every batch.
var bufPool sync.Pool

const (
	minBuf = 4 << 10   // the smallest buffer handed out
	maxBuf = 256 << 10 // larger buffers are left to the garbage collector
)

func getBuf(n int) []byte {
	if p, ok := bufPool.Get().(*[]byte); ok && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]byte, 0, max(n, minBuf))
}

func putBuf(b []byte) {
	if c := cap(b); c >= minBuf && c <= maxBuf {
		b = b[:0]
		bufPool.Put(&b)
	}
}

// write drains the queue with blocking writes, then returns; whoever next finds no
// writer running becomes the writer (or leaves the rest to the sweeps).
func (o *outbox) write() {
	for {
		// The write lock is taken only when there is something to write, so that a
		// close frame (written only if the lock is free) is not lost to this check.
		o.mu.Lock()
		if o.closed || len(o.queue) == 0 {
			o.writing = false
			o.mu.Unlock()
			return
		}
		o.mu.Unlock()
		o.wmu.Lock()
		o.mu.Lock()
		batch, count := o.take()
		o.mu.Unlock()
		_ = o.net.SetWriteDeadline(time.Now().Add(o.hub.cfg.WriteTimeout))
		_, err := o.net.Write(batch)
		_ = o.net.SetWriteDeadline(time.Time{}) // the sweeps' writes have none
		o.wmu.Unlock()
		if err != nil {
			o.fail(DisconnectWriteError)
			return
		}
		o.done(batch, count)
	}
}

// writeNow writes one frame at once under the write lock, ahead of the queue (pings,
// close frames); with try, only if no write is in progress (a connection closed as
// slow cannot take another frame).
func (o *outbox) writeNow(b []byte, timeout time.Duration, try bool) error {
	if try {
		if !o.wmu.TryLock() {
			return nil
		}
	} else {
		o.wmu.Lock()
	}
	defer o.wmu.Unlock()
	_ = o.net.SetWriteDeadline(time.Now().Add(timeout))
	_, err := o.net.Write(b)
	_ = o.net.SetWriteDeadline(time.Time{})
	return err
}

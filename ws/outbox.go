package ws

import (
	"net"
	"sync"
	"syscall"
	"time"
)

// outbox is the write side of one connection, WebSocket session or SSE stream: a
// bounded queue of frames written with writev. Replies go out at once on the
// goroutine that made them; events wait for the next sweep of a flusher (flush.go).
type outbox struct {
	hub   *Hub
	id    uint64
	net   net.Conn
	raw   syscall.RawConn // for non-blocking writes on plain TCP; nil on TLS
	fail  func(Disconnect)
	wmu   sync.Mutex // held while writing to net
	mu    sync.Mutex
	queue net.Buffers // whole frames, or a header and its payload
	spare net.Buffers // the last written batch's array, for the next queue
	bytes int         // in queue
	count int         // frames in queue
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
	full := o.bytes+n > o.hub.cfg.OutboundQueueBytes
	if full && o.writing {
		o.mu.Unlock()
		o.fail(DisconnectSlow)
		return false, false
	}
	defer o.mu.Unlock()
	o.queue = append(o.queue, header)
	if payload != nil {
		o.queue = append(o.queue, payload)
	}
	o.bytes += n
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

// shut drops the queue; later pushes fail.
func (o *outbox) shut() {
	o.mu.Lock()
	o.closed, o.queue, o.spare = true, nil, nil
	o.mu.Unlock()
}

// take removes the queue for writing; o.mu is held.
func (o *outbox) take() (net.Buffers, int) {
	batch, count := o.queue, o.count
	o.queue, o.spare = o.spare, nil
	o.bytes, o.count = 0, 0
	return batch, count
}

// maxSpare bounds the array an outbox keeps between batches.
const maxSpare = 256

// done counts a written batch and keeps its array for the next queue.
func (o *outbox) done(batch net.Buffers, count int) {
	o.hub.metrics.sent.Add(float64(count))
	o.hub.metrics.writes.Inc()
	if cap(batch) > maxSpare {
		return
	}
	batch = batch[:cap(batch)]
	clear(batch)
	o.mu.Lock()
	if o.spare == nil && !o.closed {
		o.spare = batch[:0]
	}
	o.mu.Unlock()
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
		err := writeFrames(o.net, batch)
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

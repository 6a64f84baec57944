package ws

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// outbox is the write side of one connection, WebSocket session or SSE stream: a
// bounded queue of whole frames, written with one vectored system call per batch.
// Frames are queued by reference, never copied: an event's frame is encoded once for
// every subscriber (frame.go), and the frames of consecutive events lie back to back
// in a shared chunk (arena.go), so a subscriber's run of queued events becomes one
// piece that grows in place. Replies go out at once on the goroutine that made them;
// events wait for the next sweep of a flusher (flush.go).
//
// What a delivery touches comes first, in one cache line (a session starts with its
// outbox): at 1,000,000 deliveries/s to 10,000 subscribers, each delivery finds its
// subscriber's state out of cache.
type outbox struct {
	mu    sync.Mutex
	bytes int // queued
	count int // frames queued
	limit int // outbound_queue_bytes
	// writing: a writer (a goroutine, or a sweep) owns the queue.
	writing, dirty, closed bool
	tail                   []byte   // the queue's last piece, where a run of adjacent frames grows
	queue                  [][]byte // the pieces before tail; shared frames, never modified
	spare                  [][]byte // an emptied queue, to reuse

	hub  *Hub
	id   uint64
	net  net.Conn
	raw  syscall.RawConn // for non-blocking writes on plain TCP; nil on TLS
	fail func(Disconnect)
	wmu  sync.Mutex // held while writing to net
}

func (o *outbox) init(h *Hub, id uint64, c net.Conn, fail func(Disconnect)) {
	o.hub, o.id, o.net, o.fail, o.limit = h, id, c, fail, h.cfg.OutboundQueueBytes
	if tc, ok := c.(*net.TCPConn); ok {
		o.raw, _ = tc.SyscallConn()
	}
}

// push queues a frame (a header and its payload, or a whole frame with a nil
// payload), by reference: the caller must not modify it afterwards. An urgent frame
// (a reply, a pong) reports startWriter when the caller must become (or start) the
// writer; events are left to the sweeps, unless they fill the queue before the next
// sweep, which then starts a writer at once. ok is false once the outbox is shut, or
// when the queue passes its bound while a write is already in progress (the peer
// does not read fast enough): the connection is then closed as slow.
func (o *outbox) push(header, payload []byte, urgent bool) (startWriter, ok bool) {
	n := len(header) + len(payload)
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return false, false
	}
	full := o.bytes+n > o.limit
	if full && o.writing {
		o.mu.Unlock()
		o.fail(DisconnectSlow)
		return false, false
	}
	defer o.mu.Unlock()
	o.add(header)
	if len(payload) > 0 {
		o.add(payload)
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

// add appends b to the queue, joining it to the last piece when b starts where that
// piece ends within the same allocation (the next event's frame in an arena chunk);
// o.mu is held.
func (o *outbox) add(b []byte) {
	if len(b) == 0 {
		return
	}
	t := o.tail
	if n := len(t); n > 0 && len(b) <= cap(t)-n && &t[:n+1][n] == &b[0] {
		o.tail = t[:n+len(b)]
		return
	}
	o.settle()
	o.tail = b
}

// settle moves the tail into the queue; o.mu is held.
func (o *outbox) settle() {
	if o.tail == nil {
		return
	}
	if o.queue == nil {
		o.queue, o.spare = o.spare, nil
	}
	o.queue, o.tail = append(o.queue, o.tail), nil
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
		o.settle()
		o.queue = append([][]byte{b}, o.queue...)
		o.bytes += len(b)
		o.count++
	}
	o.mu.Unlock()
	o.write() // drains the queue, then ends the hold
}

// shut drops the queue; later pushes fail.
func (o *outbox) shut() {
	o.mu.Lock()
	o.closed, o.tail, o.queue, o.spare, o.bytes = true, nil, nil, nil, 0
	o.mu.Unlock()
}

// take removes the queue for writing; o.mu is held.
func (o *outbox) take() ([][]byte, int) {
	o.settle()
	batch, count := o.queue, o.count
	o.queue, o.bytes, o.count = nil, 0, 0
	return batch, count
}

// done counts a written batch and keeps its slice for the next queue.
func (o *outbox) done(batch [][]byte, count int) {
	o.hub.metrics.sent.Add(float64(count))
	o.hub.metrics.writes.Inc()
	if cap(batch) > maxSpare {
		return
	}
	clear(batch[:cap(batch)]) // drop the references to the frames
	o.mu.Lock()
	if o.spare == nil && !o.closed {
		o.spare = batch[:0]
	}
	o.mu.Unlock()
}

// maxSpare bounds the queue slice an outbox keeps between batches.
const maxSpare = 64

// write drains the queue with blocking writes, then returns; whoever next finds no
// writer running becomes the writer (or leaves the rest to the sweeps).
func (o *outbox) write() { o.drain(true) }

// drain writes the queue until it is empty, then ends the writer's turn. With wait
// false it never blocks, for a session's reader writing an inline reply: a reader
// that waited on its client's socket would stop reading a client that stops
// reading, which would then never be found slow. A write the socket cannot take at
// once is finished by a new goroutine, which stays the writer.
func (o *outbox) drain(wait bool) {
	if !wait && o.raw == nil { // TLS: no non-blocking path
		go o.write()
		return
	}
	for {
		// The write lock is taken only when there is something to write, so that a
		// close frame (written only if the lock is free) is not lost to this check.
		o.mu.Lock()
		if o.closed || o.bytes == 0 {
			o.writing = false
			o.mu.Unlock()
			return
		}
		o.mu.Unlock()
		o.wmu.Lock()
		o.mu.Lock()
		batch, count := o.take()
		o.mu.Unlock()
		var err error
		if wait {
			err = o.writeBlocking(batch)
		} else {
			var rest [][]byte
			rest, err = o.writeAtOnce(batch)
			if err == nil && len(rest) > 0 {
				go o.finishWrite(batch, rest, count, o.write)
				return
			}
		}
		o.wmu.Unlock()
		if err != nil {
			o.fail(DisconnectWriteError)
			return
		}
		o.done(batch, count)
	}
}

// writeBlocking writes pieces within the write timeout; o.wmu is held. On TCP they
// leave with writev, first with a raw non-blocking one (what the socket takes at
// once, usually everything, needs no deadline and no hand-off of the processor: see
// writevNonBlocking); on TLS they are joined first, so that they make few records.
func (o *outbox) writeBlocking(pieces [][]byte) error {
	if o.raw != nil {
		rest, err := o.writeAtOnce(pieces)
		if err != nil || len(rest) == 0 {
			return err
		}
		pieces = rest
	}
	return o.writeWithin(pieces)
}

// iovs holds writev vectors for writes outside the sweeps (which keep their own).
var iovs = sync.Pool{New: func() any { v := make([]unix.Iovec, 0, 16); return &v }}

// writeAtOnce writes what the socket takes of pieces at once with one raw writev loop
// (writevNonBlocking) and returns the rest; o.raw is set.
func (o *outbox) writeAtOnce(pieces [][]byte) ([][]byte, error) {
	v := iovs.Get().(*[]unix.Iovec)
	var rest [][]byte
	var err error
	*v, rest, err = writevNonBlocking(o.raw, pieces, *v)
	iovs.Put(v)
	return rest, err
}

// writeWithin writes pieces within the write timeout, waiting in the poller while
// the socket is full; o.wmu is held.
func (o *outbox) writeWithin(pieces [][]byte) error {
	_ = o.net.SetWriteDeadline(time.Now().Add(o.hub.cfg.WriteTimeout))
	defer o.net.SetWriteDeadline(time.Time{}) // the sweeps' writes have none
	if o.raw != nil {
		bufs := net.Buffers(pieces) // WriteTo consumes a copy of the slice header
		_, err := bufs.WriteTo(o.net)
		return err
	}
	var n int
	for _, p := range pieces {
		n += len(p)
	}
	joined := make([]byte, 0, n)
	for _, p := range pieces {
		joined = append(joined, p...)
	}
	_, err := o.net.Write(joined)
	return err
}

// writeNow writes one frame at once under the write lock, ahead of the queue (pings,
// close frames).
func (o *outbox) writeNow(b []byte, timeout time.Duration) error {
	o.wmu.Lock()
	return o.writeLocked(b, timeout)
}

// writeSoon is writeNow when the write lock comes free within wait: a writer
// finishing a batch lets go within microseconds, one blocked on a peer that does not
// read (a connection closed as slow) may hold it for the whole write timeout.
func (o *outbox) writeSoon(b []byte, timeout, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for pause := 20 * time.Microsecond; !o.wmu.TryLock(); pause = min(2*pause, 5*time.Millisecond) {
		if !time.Now().Before(deadline) {
			return errWriterBusy
		}
		time.Sleep(pause)
	}
	return o.writeLocked(b, timeout)
}

// closeWith writes a last frame b (a close frame) and closes the connection. When a
// write holds the connection, a goroutine waits for it, at most wait, so that the
// caller never does: a shutdown closing thousands of sessions must not wait for each.
func (o *outbox) closeWith(b []byte, wait time.Duration) {
	if o.wmu.TryLock() {
		_ = o.writeLocked(b, time.Second)
		_ = o.net.Close()
		return
	}
	if wait <= 0 {
		_ = o.net.Close()
		return
	}
	go func() {
		_ = o.writeSoon(b, time.Second, wait)
		_ = o.net.Close()
	}()
}

var errWriterBusy = errors.New("ws: another write holds the connection")

// writeLocked writes b within timeout and lets go of the write lock.
func (o *outbox) writeLocked(b []byte, timeout time.Duration) error {
	defer o.wmu.Unlock()
	_ = o.net.SetWriteDeadline(time.Now().Add(timeout))
	_, err := o.net.Write(b)
	_ = o.net.SetWriteDeadline(time.Time{})
	return err
}

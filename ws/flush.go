package ws

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Events are written in sweeps. A session that gets an event while it wrote recently
// is marked dirty; a flusher goroutine (one per CPU, each owning a share of the
// sessions) wakes at most once per event_write_interval and writes every dirty
// session's queue with one non-blocking writev. Under load a sweep takes longer, so
// each session's batch grows on its own: the number of system calls stays near one
// per session per sweep whatever the event rate, and delivering an event to a session
// costs the dispatcher only a queue append. A write that would block (a full socket
// buffer) is finished by a goroutine of that session, so a slow reader never holds up
// a sweep.

type flusher struct {
	interval time.Duration
	mu       sync.Mutex
	dirty    []*outbox
	wake     chan struct{}
}

func newFlushers(n int, interval time.Duration) []*flusher {
	fs := make([]*flusher, n)
	for i := range fs {
		fs[i] = &flusher{interval: interval, wake: make(chan struct{}, 1)}
	}
	return fs
}

// mark queues o for the next sweep; o.mu is held and o.dirty was false.
func (f *flusher) mark(s *outbox) {
	f.mu.Lock()
	f.dirty = append(f.dirty, s)
	first := len(f.dirty) == 1
	f.mu.Unlock()
	if first {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
}

func (f *flusher) run(ctx context.Context) {
	var last time.Time
	var list []*outbox
	timer := time.NewTimer(0)
	<-timer.C
	for {
		select {
		case <-f.wake:
		case <-ctx.Done():
			return
		}
		if wait := f.interval - time.Since(last); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
		}
		last = time.Now()
		f.mu.Lock()
		list, f.dirty = f.dirty, list[:0]
		f.mu.Unlock()
		for i, s := range list {
			s.flush()
			list[i] = nil
		}
	}
}

// flush writes what o has queued, without blocking: called by its flusher.
func (o *outbox) flush() {
	o.mu.Lock()
	o.dirty = false
	if o.writing || o.closed || len(o.queue) == 0 {
		o.mu.Unlock() // a writer goroutine has it, or nothing is left
		return
	}
	if o.raw == nil { // TLS: no non-blocking path; a writer goroutine does it
		o.writing = true
		o.mu.Unlock()
		go o.write()
		return
	}
	if !o.wmu.TryLock() { // a ping or close frame is being written: next sweep
		o.markLocked()
		o.mu.Unlock()
		return
	}
	batch, count := o.take()
	o.writing = true
	o.mu.Unlock()

	rest, err := writeNonBlocking(o.raw, batch)
	switch {
	case err != nil:
		o.wmu.Unlock()
		o.fail(DisconnectWriteError)
		return
	case len(rest) > 0: // the socket is full: finish on a goroutine of this connection
		go o.finishBatch(rest, count)
		return
	}
	o.wmu.Unlock()
	o.done(batch, count)
	o.release()
}

// finishBatch writes the rest of a batch that a sweep could not, blocking up to the
// write timeout, then hands the outbox back to the sweeps. It holds o.wmu from the
// sweep.
func (o *outbox) finishBatch(rest []byte, count int) {
	_ = o.net.SetWriteDeadline(time.Now().Add(o.hub.cfg.WriteTimeout))
	_, err := o.net.Write(rest)
	_ = o.net.SetWriteDeadline(time.Time{})
	o.wmu.Unlock()
	if err != nil {
		o.fail(DisconnectWriteError)
		return
	}
	o.done(nil, count) // rest is a tail of the batch: its buffer is not reused
	o.release()
}

// release ends a sweep's ownership of the queue, marking what came meanwhile.
func (o *outbox) release() {
	o.mu.Lock()
	o.writing = false
	if len(o.queue) > 0 && !o.closed {
		o.markLocked()
	}
	o.mu.Unlock()
}

// markLocked puts o on its flusher's list unless it is there; o.mu is held.
func (o *outbox) markLocked() {
	if !o.dirty {
		o.dirty = true
		o.hub.flushers[o.id%uint64(len(o.hub.flushers))].mark(o)
	}
}

// writeNonBlocking writes b to the socket until it would block, and returns what
// is left.
func writeNonBlocking(rc syscall.RawConn, b []byte) ([]byte, error) {
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		for len(b) > 0 {
			n, err := unix.Write(int(fd), b)
			if n > 0 {
				b = b[n:]
			}
			switch {
			case errors.Is(err, unix.EINTR):
				continue
			case errors.Is(err, unix.EAGAIN):
				return true
			case err != nil:
				werr = err
				return true
			case n == 0:
				return true
			}
		}
		return true
	})
	if werr != nil {
		return b, werr
	}
	return b, err
}

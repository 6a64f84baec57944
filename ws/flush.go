package ws

import (
	"context"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/circlegate/circlegate/internal/rawio"
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
	iov      []unix.Iovec // the sweep's writev vector, reused
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

// yieldEvery is how many sessions a sweep writes between turns it gives the
// scheduler: about 0.5 ms of writes.
const yieldEvery = 32

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
			s.flush(f)
			list[i] = nil
			if i%yieldEvery == yieldEvery-1 {
				// The writes are raw system calls, which never give the processor
				// up: let the dispatcher and the commit path in now and then.
				runtime.Gosched()
			}
		}
	}
}

// flush writes what o has queued, without blocking: called by its flusher f.
func (o *outbox) flush(f *flusher) {
	o.mu.Lock()
	o.dirty = false
	if o.writing || o.closed || o.bytes == 0 {
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

	var rest [][]byte
	var err error
	f.iov, rest, err = writevNonBlocking(o.raw, batch, f.iov)
	switch {
	case err != nil:
		o.wmu.Unlock()
		o.fail(DisconnectWriteError)
		return
	case len(rest) > 0: // the socket is full: finish on a goroutine of this connection
		go o.finishWrite(batch, rest, count, o.release)
		return
	}
	o.wmu.Unlock()
	o.done(batch, count)
	o.release()
}

// finishWrite writes rest, the tail of batch that a non-blocking write (a sweep's, or
// a reader's drain) could not, blocking up to the write timeout, then calls then:
// release hands the outbox back to the sweeps, write drains what came meanwhile. It
// holds o.wmu from the write it finishes.
func (o *outbox) finishWrite(batch, rest [][]byte, count int, then func()) {
	err := o.writeWithin(rest) // the socket was full a moment ago
	o.wmu.Unlock()
	if err != nil {
		o.fail(DisconnectWriteError)
		return
	}
	o.done(batch, count)
	then()
}

// release ends a sweep's ownership of the queue, marking what came meanwhile.
func (o *outbox) release() {
	o.mu.Lock()
	o.writing = false
	if o.bytes > 0 && !o.closed {
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

// maxIovec is the most pieces one writev takes (IOV_MAX).
const maxIovec = 1024

// writevNonBlocking writes pieces to the socket until it would block, and returns
// what is left (a tail of pieces, the first one cut where the write stopped). iov is
// scratch space, returned for reuse.
func writevNonBlocking(rc syscall.RawConn, pieces [][]byte, iov []unix.Iovec) ([]unix.Iovec, [][]byte, error) {
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		for len(pieces) > 0 {
			iov = iov[:0]
			for _, p := range pieces[:min(len(pieces), maxIovec)] {
				v := unix.Iovec{Base: unsafe.SliceData(p)}
				v.SetLen(len(p))
				iov = append(iov, v)
			}
			// A raw write (internal/rawio): no hand-off of the processor around it.
			r, errno := rawio.Writev(fd, iov)
			switch {
			case errno == unix.EAGAIN:
				return true
			case errno != 0:
				werr = errno
				return true
			case r == 0:
				return true
			}
			pieces = advance(pieces, int(r))
		}
		return true
	})
	clear(iov) // no references to the frames stay behind
	if werr != nil {
		return iov, pieces, werr
	}
	return iov, pieces, err
}

// advance drops the first n bytes of pieces.
func advance(pieces [][]byte, n int) [][]byte {
	for n > 0 && len(pieces) > 0 {
		if n < len(pieces[0]) {
			pieces[0] = pieces[0][n:]
			return pieces
		}
		n -= len(pieces[0])
		pieces = pieces[1:]
	}
	return pieces
}

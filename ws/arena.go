package ws

import "sync"

// An arena hands out the bytes of one encoding's event frames from shared chunks,
// one after the other, so that the frames of consecutive events of a context lie
// back to back: a subscriber's queued run of them is one piece (outbox.add), which
// grows in place as events come and leaves in one iovec, with no copy per
// subscriber. A chunk lives as long as any queue or message refers to a frame in it.
type arena struct {
	mu    sync.Mutex
	chunk []byte // the current chunk, up to its first free byte
}

const (
	arenaChunk    = 64 << 10
	arenaMaxFrame = arenaChunk / 8 // larger frames get an allocation of their own
)

// alloc returns n bytes for a frame. Its capacity runs on to the end of the chunk,
// over the frames allocated after it: the caller fills exactly the n bytes (fill
// does), and nobody may ever append to a frame.
func (a *arena) alloc(n int) []byte {
	if n > arenaMaxFrame {
		return make([]byte, n)
	}
	a.mu.Lock()
	if cap(a.chunk)-len(a.chunk) < n {
		a.chunk = make([]byte, 0, arenaChunk)
	}
	i := len(a.chunk)
	a.chunk = a.chunk[:i+n]
	b := a.chunk[i : i+n]
	a.mu.Unlock()
	return b
}

// fill makes a frame of n bytes from a, writing it with write, which appends to the
// empty slice it is given and should append exactly n bytes. (If it appends more,
// the frame it made is returned as is, outside the arena.)
func (a *arena) fill(n int, write func([]byte) []byte) []byte {
	b := a.alloc(n)
	if w := write(b[:0:n]); len(w) != n || n == 0 || &w[0] != &b[0] {
		return w
	}
	return b
}

package execution

import "github.com/tetratelabs/wazero/experimental"

const pageBytes = 65536

// engineMemory backs an instance's linear memory. It refuses to grow past the
// running call's memory_pages, so a per-call limit holds on a pooled instance too.
type engineMemory struct {
	in  *engineInstance
	buf []byte
	max uint64 // the module's own maximum, in bytes
}

func (in *engineInstance) allocate(_, max uint64) experimental.LinearMemory {
	in.memory = &engineMemory{in: in, max: max}
	return in.memory
}

// Reallocate grows the memory to size bytes, or returns nil past the limit (the
// guest's memory.grow then returns -1).
func (m *engineMemory) Reallocate(size uint64) []byte {
	if size > m.in.memLimit {
		m.in.memDenied = true
		return nil
	}
	if size <= uint64(cap(m.buf)) {
		m.buf = m.buf[:size]
		return m.buf
	}
	// Grow the capacity geometrically, so a guest that grows page by page copies
	// its memory O(log n) times.
	c := min(max(size, 2*uint64(cap(m.buf))), max(m.max, size), max(m.in.memLimit, size))
	buf := make([]byte, size, c)
	copy(buf, m.buf)
	m.buf = buf
	return buf
}

// Free releases the memory.
func (m *engineMemory) Free() { m.buf = nil }

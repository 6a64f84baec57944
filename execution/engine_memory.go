package execution

import (
	"sync"

	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

const pageBytes = 65536

// engineMemory backs an instance's linear memory. It refuses to grow past the
// running call's memory_pages, so a per-call limit holds on a pooled instance too.
//
// The memory is an anonymous mapping that reserves the instance's whole allowance
// of address space (memory_pages, or the module's own maximum if lower) at once, so
// growing is only a longer slice: nothing is zeroed or copied, and a page costs RAM
// only once the guest touches it. (A Go slice grown by doubling did both: one grow
// of a Go guest's memory, with this VM's page faults, held its goroutine for 20 ms,
// which the Go scheduler cannot preempt inside compiled guest code.) The mapping is
// outside the Go heap, so it is unmapped by hand, and never under a running call:
// wazero frees a module's memory when its runtime closes, which can be while a call
// still runs; the unmapping then waits for the call to end (enter, leave).
type engineMemory struct {
	in  *engineInstance
	max uint64 // the module's own maximum, in bytes

	mu      sync.Mutex
	buf     []byte   // the memory: len is its size, cap the reservation
	retired [][]byte // mappings outgrown during a call, unmapped when it ends
	busy    bool     // guest code may be using the memory
	freed   bool     // wazero is done with it
}

func (in *engineInstance) allocate(_, max uint64) experimental.LinearMemory {
	// Busy from the start: the module's start functions run before instantiate
	// returns, which then calls leave.
	in.memory = &engineMemory{in: in, max: max, busy: true}
	return in.memory
}

// Reallocate grows the memory to size bytes, or returns nil past the limit or when
// no address space can be had (the guest's memory.grow then returns -1).
func (m *engineMemory) Reallocate(size uint64) []byte {
	if size > m.in.memLimit {
		m.in.memDenied = true
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.buf != nil && size <= uint64(cap(m.buf)) {
		m.buf = m.buf[:size]
		return m.buf
	}
	// A first allocation, or a call whose memory_pages is above the reservation's:
	// reserve anew and copy. The old mapping stays until the call ends, in case
	// anything still points into it.
	reserve := max(size, min(m.max, m.in.memLimit), pageBytes)
	region, err := unix.Mmap(-1, 0, int(reserve), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON|unix.MAP_NORESERVE)
	if err != nil {
		return nil
	}
	adviseHugePages(region) // with 4 KiB pages, mutations measured about 7% slower
	copy(region, m.buf)
	if m.buf != nil {
		m.retired = append(m.retired, m.buf[:cap(m.buf)])
	}
	m.buf = region[:size]
	return m.buf
}

// Free releases the memory: at once, or when the running call ends.
func (m *engineMemory) Free() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.freed = true
	if !m.busy {
		m.unmap()
	}
}

// enter marks a call running on the instance: the memory stays mapped until leave.
func (m *engineMemory) enter() {
	m.mu.Lock()
	m.busy = true
	m.mu.Unlock()
}

// leave ends what enter (or allocate) began, unmapping what is no longer used.
func (m *engineMemory) leave() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.busy = false
	m.unmapRetired()
	if m.freed {
		m.unmap()
	}
}

// unmap releases every mapping; m.mu is held and no call runs.
func (m *engineMemory) unmap() {
	m.unmapRetired()
	if m.buf != nil {
		_ = unix.Munmap(m.buf[:cap(m.buf)])
		m.buf = nil
	}
}

// unmapRetired releases the mappings the memory outgrew; m.mu is held and no call
// runs.
func (m *engineMemory) unmapRetired() {
	for _, r := range m.retired {
		_ = unix.Munmap(r)
	}
	m.retired = nil
}

package execution

import "testing"

// TestEngineMemory: growing keeps the contents and the address within the
// reservation, the limit holds, and the mapping outlives a Free that comes while a
// call runs.
func TestEngineMemory(t *testing.T) {
	in := &engineInstance{memLimit: 4 * pageBytes}
	m := in.allocate(0, 1<<32).(*engineMemory) // busy: start-up
	b := m.Reallocate(pageBytes)
	if len(b) != pageBytes || cap(b) != 4*pageBytes {
		t.Fatalf("first allocation: len %d cap %d, want one page of a four-page reservation", len(b), cap(b))
	}
	b[100] = 7
	g := m.Reallocate(3 * pageBytes)
	if &g[0] != &b[0] || g[100] != 7 {
		t.Fatal("growing within the reservation moved or lost the memory")
	}
	if m.Reallocate(5*pageBytes) != nil || !in.memDenied {
		t.Fatal("grew past memory_pages")
	}
	// A later call with a higher limit outgrows the reservation: a new mapping with
	// the same contents; the old one stays until the call ends.
	in.memLimit = 8 * pageBytes
	h := m.Reallocate(6 * pageBytes)
	if len(h) != 6*pageBytes || h[100] != 7 || len(m.retired) != 1 {
		t.Fatalf("outgrowing the reservation: len %d, byte %d, %d retired", len(h), h[100], len(m.retired))
	}
	g[100] = 8 // the old mapping is still there
	m.Free()   // wazero closes the module while the call still runs
	h[200] = 9 // and the memory is still there
	if m.buf == nil {
		t.Fatal("Free unmapped the memory under a running call")
	}
	m.leave()
	if m.buf != nil || m.retired != nil {
		t.Fatal("the memory was not unmapped when the call ended")
	}

	// Free with no call running unmaps at once; a second Free does nothing.
	m2 := in.allocate(0, 1<<32).(*engineMemory)
	m2.Reallocate(pageBytes)
	m2.leave()
	m2.enter()
	m2.leave()
	m2.Free()
	if m2.buf != nil {
		t.Fatal("Free with no call running kept the mapping")
	}
	m2.Free()
}

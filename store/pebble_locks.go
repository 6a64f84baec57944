package store

import (
	"hash/maphash"
	"sync"
)

// lockStripes is the number of mutexes that serialize writers of one context (or one
// app). Writers of different contexts rarely share a stripe, so their synced batches
// reach Pebble's commit pipeline together and share a WAL fsync.
const lockStripes = 1024

// stripes is an array of mutexes indexed by a hash of a name.
type stripes struct {
	seed maphash.Seed
	mu   [lockStripes]sync.Mutex
}

func newStripes() *stripes { return &stripes{seed: maphash.MakeSeed()} }

func (s *stripes) index(name string) int {
	return int(maphash.String(s.seed, name) % lockStripes)
}

// lock locks the stripes of names (in index order, each once, so two callers never
// deadlock) and returns the function that unlocks them.
func (s *stripes) lock(names ...string) (unlock func()) {
	if len(names) == 1 {
		m := &s.mu[s.index(names[0])]
		m.Lock()
		return m.Unlock
	}
	idx := make([]int, 0, len(names))
	for _, n := range names {
		idx = insertSorted(idx, s.index(n))
	}
	for _, i := range idx {
		s.mu[i].Lock()
	}
	return func() {
		for j := len(idx) - 1; j >= 0; j-- {
			s.mu[idx[j]].Unlock()
		}
	}
}

// insertSorted inserts v into the sorted slice idx unless it is there already.
func insertSorted(idx []int, v int) []int {
	at := len(idx)
	for i, x := range idx {
		if x == v {
			return idx
		}
		if x > v {
			at = i
			break
		}
	}
	idx = append(idx, 0)
	copy(idx[at+1:], idx[at:])
	idx[at] = v
	return idx
}

func contextLockName(contextID string) string { return "c\x00" + contextID }
func appLockName(tenant, appID string) string { return "a\x00" + tenant + "\x00" + appID }

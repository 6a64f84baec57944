package store

import (
	"bytes"
	"hash/maphash"
	"strings"
	"sync"
)

// stateCacheShards spreads the state cache over several maps, as for heads.
const stateCacheShards = 64

// maxCachedValue bounds the values the state cache keeps: larger ones are read from
// Pebble every time.
const maxCachedValue = 64 << 10

// stateCache keeps state values and idempotency records in memory by their Pebble
// key, so that the read of a key a context wrote recently (a counter, a balance), or
// found missing (a new event's id, a new idempotency key, looked up by the worker
// and again by the commit), costs no memtable search.
// Commits write through it once their batch is durable, while they hold the
// context's lock; it also remembers the keys they removed. A read that misses fills
// it only if no commit touched the shard since the read started (gen), so a value
// read just before a commit never overwrites the commit's. It is bounded by bytes;
// a full shard drops some entries.
type stateCache struct {
	seed   maphash.Seed
	max    int64 // bytes per shard
	shards [stateCacheShards]struct {
		mu   sync.Mutex
		gen  uint64
		size int64
		m    map[string]cachedState
	}
}

// cachedState is a value, or the fact that the key has none.
type cachedState struct {
	v     []byte
	found bool
}

// newStateCache returns a cache of about maxBytes, or nil (no cache) when it is 0.
func newStateCache(maxBytes int64) *stateCache {
	if maxBytes <= 0 {
		return nil
	}
	c := &stateCache{seed: maphash.MakeSeed(), max: max(1, maxBytes/stateCacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]cachedState)
	}
	return c
}

func (c *stateCache) shard(k []byte) int { return int(maphash.Bytes(c.seed, k) % stateCacheShards) }

// get returns a copy of the cached value of state key k, and whether k was cached;
// gen is what fill needs after a miss.
func (c *stateCache) get(k []byte) (v []byte, found, cached bool, gen uint64) {
	s := &c.shards[c.shard(k)]
	s.mu.Lock()
	e, ok := s.m[string(k)]
	gen = s.gen
	s.mu.Unlock()
	if !ok {
		return nil, false, false, gen
	}
	if !e.found {
		return nil, false, true, gen
	}
	return bytes.Clone(e.v), true, true, gen
}

// size returns the length of the cached value of k, and whether k was cached.
func (c *stateCache) size(k []byte) (n int, found, cached bool) {
	s := &c.shards[c.shard(k)]
	s.mu.Lock()
	e, ok := s.m[string(k)]
	s.mu.Unlock()
	return len(e.v), e.found, ok
}

// fill caches what a read of k found in Pebble, unless a commit touched the shard
// since get returned gen.
func (c *stateCache) fill(k, v []byte, found bool, gen uint64) {
	s := &c.shards[c.shard(k)]
	s.mu.Lock()
	if s.gen == gen {
		c.setLocked(k, v, found)
	}
	s.mu.Unlock()
}

// write records a commit's write of k (nil v with found false: a removal).
func (c *stateCache) write(k, v []byte, found bool) {
	s := &c.shards[c.shard(k)]
	s.mu.Lock()
	s.gen++
	c.setLocked(k, v, found)
	s.mu.Unlock()
}

// setLocked sets the entry of k; its shard's lock is held.
func (c *stateCache) setLocked(k, v []byte, found bool) {
	s := &c.shards[c.shard(k)]
	if old, ok := s.m[string(k)]; ok {
		s.size -= entrySize(k, old.v)
		delete(s.m, string(k))
	}
	if len(v) > maxCachedValue {
		return
	}
	if n := entrySize(k, v); s.size+n > c.max {
		for key, e := range s.m { // drop about an eighth, in map order
			delete(s.m, key)
			if s.size -= int64(len(key)+len(e.v)) + 64; s.size <= c.max-c.max/8-n {
				break
			}
		}
	}
	e := cachedState{found: found}
	if found {
		e.v = bytes.Clone(v)
		if e.v == nil {
			e.v = []byte{}
		}
	}
	s.m[string(k)] = e
	s.size += entrySize(k, e.v)
}

// entrySize approximates the memory of an entry: key, value and map overhead.
func entrySize(k, v []byte) int64 { return int64(len(k) + len(v) + 64) }

// forget drops the entry of k, whatever Pebble holds now (a failed commit).
func (c *stateCache) forget(k []byte) {
	s := &c.shards[c.shard(k)]
	s.mu.Lock()
	s.gen++
	if e, ok := s.m[string(k)]; ok {
		delete(s.m, string(k))
		s.size -= entrySize(k, e.v)
	}
	s.mu.Unlock()
}

// dropPrefix forgets every entry whose key starts with prefix (a deleted context).
func (c *stateCache) dropPrefix(prefix []byte) {
	p := string(prefix)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.gen++
		for key, e := range s.m {
			if strings.HasPrefix(key, p) {
				delete(s.m, key)
				s.size -= int64(len(key)+len(e.v)) + 64
			}
		}
		s.mu.Unlock()
	}
}

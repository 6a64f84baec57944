package store

import (
	"hash/maphash"
	"slices"
	"sync"
)

// headCacheShards spreads the head cache over several maps so readers of different
// contexts rarely share a lock.
const headCacheShards = 64

// headCache keeps decoded context heads in memory, write-through: every writer
// updates it after its batch is durable, while holding the context's lock, and a miss
// is filled under the same lock, so it never holds a head older than Pebble's. It
// saves a Pebble read and a JSON decode on every call that touches a context.
type headCache struct {
	seed   maphash.Seed
	max    int // entries per shard
	shards [headCacheShards]struct {
		mu sync.RWMutex
		m  map[string]head
	}
}

func newHeadCache(maxEntries int) *headCache {
	c := &headCache{seed: maphash.MakeSeed(), max: max(1, maxEntries/headCacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]head)
	}
	return c
}

func (c *headCache) shard(id string) int { return int(maphash.String(c.seed, id) % headCacheShards) }

// get returns a copy of the cached head of id.
func (c *headCache) get(id string) (head, bool) {
	s := &c.shards[c.shard(id)]
	s.mu.RLock()
	h, ok := s.m[id]
	s.mu.RUnlock()
	h.Members = slices.Clone(h.Members)
	return h, ok
}

// put stores a copy of h; a full shard first drops some entries (they are reloaded
// from Pebble on their next use).
func (c *headCache) put(id string, h head) {
	h.Members = slices.Clone(h.Members)
	s := &c.shards[c.shard(id)]
	s.mu.Lock()
	if _, ok := s.m[id]; !ok && len(s.m) >= c.max {
		n := 0
		for k := range s.m {
			delete(s.m, k)
			if n++; n >= max(1, c.max/8) {
				break
			}
		}
	}
	s.m[id] = h
	s.mu.Unlock()
}

func (c *headCache) del(id string) {
	s := &c.shards[c.shard(id)]
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
}

package store

import (
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// TestPebbleBlockCacheBesideMemtables checks that the block cache keeps blocks while
// memtables are full: Pebble charges every memtable (the mutable one, those waiting
// for a flush and zombies still referenced) against its cache, so a cache no larger
// than the memtables would hold no block at all and every read would go to the file.
func TestPebbleBlockCacheBesideMemtables(t *testing.T) {
	p, err := OpenPebble(PebbleConfig{Dir: t.TempDir(), CacheBytes: 2 << 20, MemTableBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	value := make([]byte, 512)
	key := func(i int) []byte { return fmt.Appendf(nil, "k%08d", i) }
	const keys = 6000 // about 3 MiB: several memtables, flushed to tables
	for i := range keys {
		if err := p.db.Set(key(i), value, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.db.Flush(); err != nil {
		t.Fatal(err)
	}
	// Fill the mutable memtable again so that it is charged in full.
	for i := range 1800 {
		if err := p.db.Set(fmt.Appendf(nil, "m%08d", i), value, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	before := p.db.Metrics().BlockCache
	for range 2 {
		for i := 0; i < keys; i += 7 {
			if _, closer, err := p.db.Get(key(i)); err != nil {
				t.Fatalf("get %s: %v", key(i), err)
			} else {
				closer.Close()
			}
		}
	}
	m := p.db.Metrics().BlockCache
	hits, misses := m.Hits-before.Hits, m.Misses-before.Misses
	if m.Size == 0 || hits < misses {
		t.Fatalf("block cache holds %d bytes, %d hits and %d misses over two passes of the same reads: the memtables crowd it out", m.Size, hits, misses)
	}
}

package store_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circlegate/circlegate/store"
	"github.com/circlegate/circlegate/store/storetest"
)

// newPebbleContext creates context id (with a genesis write and an event at time at) in a fresh
// Pebble store.
func newPebbleContext(t *testing.T, h store.HistoryConfig, id string, at time.Time) (*store.Pebble, store.Context) {
	t.Helper()
	s := openPebble(t, store.PebbleConfig{Dir: t.TempDir(), History: h})
	return s, createContext(t, s, id, at)
}

// createContext creates context id of tenant "t" in s, with a genesis at time at that
// sets a = 1 and emits ContextCreated.
func createContext(t *testing.T, s store.Store, id string, at time.Time) store.Context {
	t.Helper()
	app, _, err := s.PutApp(t.Context(), store.App{Tenant: "t"}, []byte("wasm"))
	if err != nil {
		t.Fatal(err)
	}
	g := storetest.GenesisTx(id, at, []store.Write{storetest.Set("a", "1")}, "ContextCreated")
	c := storetest.NewContext("t", app.ID, id, g)
	if err := s.CreateContext(t.Context(), c, g); err != nil {
		t.Fatal(err)
	}
	return c
}

func commitAt(t *testing.T, s store.Store, c store.Context, at time.Time, kinds ...string) store.Context {
	t.Helper()
	tx := storetest.NextTx(c, at, []store.Write{storetest.Set("k", "v")}, kinds...)
	err := s.Commit(t.Context(), store.Commit{Tenant: c.Tenant, ContextID: c.ID, ExpectedSeq: c.Seq, Tx: tx,
		IdempotencyKey: "job-" + strconv.FormatUint(tx.Seq, 10), Idempotency: store.Idempotency{Digest: "d"}})
	if err != nil {
		t.Fatal(err)
	}
	return storetest.Advance(c, tx)
}

// TestPebbleDeleteContextLeavesNothing: after DeleteContext no key of the database
// names the context.
func TestPebbleDeleteContextLeavesNothing(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef"
	s, c := newPebbleContext(t, store.HistoryConfig{}, id, time.Now())
	c = commitAt(t, s, c, time.Now(), "Mutated")
	if keys := store.PebbleKeysContaining(s, id); len(keys) < 6 {
		t.Fatalf("before delete: %d keys name the context", len(keys))
	}
	if err := s.DeleteContext(t.Context(), "t", id); err != nil {
		t.Fatal(err)
	}
	if keys := store.PebbleKeysContaining(s, id); len(keys) != 0 {
		t.Errorf("after delete, keys remain: %q", keys)
	}
}

// TestPebbleHistoryTrimmedOnDisk: commits delete the events beyond MaxEvents, and
// now and then the expired ones, rather than only hide them.
func TestPebbleHistoryTrimmedOnDisk(t *testing.T) {
	s, c := newPebbleContext(t, store.HistoryConfig{MaxEvents: 4}, "ctx", time.Now())
	for range 3 {
		c = commitAt(t, s, c, time.Now(), "E")
	}
	if got := store.StoredEventSeqs(s, "ctx"); !slices.Equal(got, []uint64{1, 2, 3, 4}) {
		t.Errorf("after 4 events, bound 4: stored %v", got)
	}
	commitAt(t, s, c, time.Now(), "E", "E")
	if got := store.StoredEventSeqs(s, "ctx"); !slices.Equal(got, []uint64{3, 4, 5, 6}) {
		t.Errorf("after 6 events, bound 4: stored %v", got)
	}

	old := time.Now().Add(-2 * time.Hour)
	s, c = newPebbleContext(t, store.HistoryConfig{MaxAge: time.Hour}, "ctx", old)
	c = commitAt(t, s, c, old, slices.Repeat([]string{"Old"}, 59)...) // events 1..60
	c = commitAt(t, s, c, time.Now(), "New")                          // 61
	if got := store.StoredEventSeqs(s, "ctx"); len(got) != 61 {
		t.Errorf("expired events deleted before a multiple of 64: %d stored", len(got))
	}
	commitAt(t, s, c, time.Now(), slices.Repeat([]string{"New"}, 5)...) // 62..66
	if got := store.StoredEventSeqs(s, "ctx"); !slices.Equal(got, seqs(61, 66)) {
		t.Errorf("after crossing 64, expired events still stored: %v", got)
	}
}

func seqs(lo, hi uint64) []uint64 {
	var out []uint64
	for s := lo; s <= hi; s++ {
		out = append(out, s)
	}
	return out
}

// TestPebbleStateCacheEvicting: with a state cache so small that reads of other keys
// keep evicting the written key, reads miss and fill the cache while commits update
// it; a read that starts after the commit of n still never reads less than n.
func TestPebbleStateCacheEvicting(t *testing.T) {
	s := openPebble(t, store.PebbleConfig{Dir: t.TempDir(), StateCacheBytes: 64})
	app, _, err := s.PutApp(t.Context(), store.App{Tenant: "t"}, []byte("wasm"))
	if err != nil {
		t.Fatal(err)
	}
	var others []store.Write
	for i := range 200 {
		others = append(others, storetest.Set(fmt.Sprint("x", i), "v"))
	}
	g := storetest.GenesisTx("c", time.Now(), append(others, storetest.Set("n", "0")), "ContextCreated")
	c := storetest.NewContext("t", app.ID, "c", g)
	if err := s.CreateContext(t.Context(), c, g); err != nil {
		t.Fatal(err)
	}
	var committed atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Go(func() {
			for i := r; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				low := committed.Load()
				v, _, err := s.Get(t.Context(), "c", []byte("n"))
				if n, perr := strconv.ParseInt(string(v), 10, 64); err != nil || perr != nil || n < low {
					t.Errorf("Get(n) = %q, %v after %d was committed", v, err, low)
					return
				}
				_, _, _ = s.Get(t.Context(), "c", []byte(fmt.Sprint("x", i%200)))
			}
		})
	}
	for n := int64(1); n <= 300; n++ {
		tx := storetest.NextTx(c, time.Now(), []store.Write{storetest.Set("n", fmt.Sprint(n))})
		if err := s.Commit(t.Context(), store.Commit{Tenant: "t", ContextID: "c", ExpectedSeq: c.Seq, Tx: tx}); err != nil {
			t.Fatal(err)
		}
		c = storetest.Advance(c, tx)
		committed.Store(n)
	}
	close(done)
	wg.Wait()
}

// TestPebbleReplaysFilledLog takes a crash image of an open store (its files copied
// as they are, the commits only in the write-ahead log, which is filled with zeros
// past its last record) and opens it: every commit is there and the chain verifies.
func TestPebbleReplaysFilledLog(t *testing.T) {
	const id, commits = "0123456789abcdef0123456789abcdef", 200
	dir := t.TempDir()
	s := openPebble(t, store.PebbleConfig{Dir: dir})
	c := createContext(t, s, id, time.Now())
	for range commits {
		c = commitAt(t, s, c, time.Now(), "Mutated")
	}
	log := waitFilledLog(t, dir)
	image := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(image, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := openPebble(t, store.PebbleConfig{Dir: image})
	got, err := r.GetContext(t.Context(), "t", id)
	if err != nil {
		t.Fatalf("crash image of a store with a filled log (%s): %v", log, err)
	}
	if got.Seq != commits || got.RootHash != c.RootHash {
		t.Fatalf("crash image: seq %d root %s, want %d %s", got.Seq, got.RootHash, commits, c.RootHash)
	}
	if err := store.VerifyContext(t.Context(), r, got); err != nil {
		t.Fatal(err)
	}
}

// waitFilledLog waits until dir's write-ahead log ends in zeros that Pebble did not
// write (the fill runs in the background) and returns its name.
func waitFilledLog(t *testing.T, dir string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		for _, l := range logs {
			b, err := os.ReadFile(l)
			if err == nil && len(b) >= 1<<20 && slices.Max(b[len(b)-64<<10:]) == 0 {
				return filepath.Base(l)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log in %s was filled ahead: %v", dir, logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

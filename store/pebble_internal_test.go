package store_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circlegate/circlegate/errs"
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

// TestPebbleHistoryInTxLog: a commit's events live in its tx record only; a member
// change's event gets an event record, which goes once history has moved past it
// (when its events next cross a multiple of 64).
func TestPebbleHistoryInTxLog(t *testing.T) {
	s, c := newPebbleContext(t, store.HistoryConfig{MaxEvents: 4}, "ctx", time.Now())
	c = commitAt(t, s, c, time.Now(), "E", "E") // events 2, 3
	if got := store.StoredEventSeqs(s, "ctx"); len(got) != 0 {
		t.Errorf("commits wrote event records %v", got)
	}
	c = updateMembers(t, s, c, "m") // event 4
	if got := store.StoredEventSeqs(s, "ctx"); !slices.Equal(got, []uint64{4}) {
		t.Errorf("after a member change: event records %v, want [4]", got)
	}
	for c.EventSeq < 63 {
		c = commitAt(t, s, c, time.Now(), "E")
	}
	if got := store.StoredEventSeqs(s, "ctx"); !slices.Equal(got, []uint64{4}) {
		t.Errorf("event records %v before crossing 64, want [4]", got)
	}
	c = commitAt(t, s, c, time.Now(), "E") // 64
	if got := store.StoredEventSeqs(s, "ctx"); len(got) != 0 {
		t.Errorf("event records %v left behind history", got)
	}
	wantEvents(t, s, c.ID, 0, 100, seqs(61, 64))
}

// TestPebbleHistoryDropsLegacyRecords: the event records a data dir written before
// tx records held their events keeps go once history moves past them, many at once
// in one range deletion, and history still reads whole.
func TestPebbleHistoryDropsLegacyRecords(t *testing.T) {
	s, c := newPebbleContext(t, store.HistoryConfig{MaxEvents: 100}, "ctx", time.Now())
	c = commitAt(t, s, c, time.Now(), slices.Repeat([]string{"E"}, 149)...) // events 1..150, history 51..150
	store.WriteLegacyHistory(s, "ctx")
	if got := store.StoredEventSeqs(s, "ctx"); !slices.Equal(got, seqs(51, 150)) {
		t.Fatalf("legacy layout: event records %d..., %d of them; want 51..150", got[0], len(got))
	}
	c = commitAt(t, s, c, time.Now(), slices.Repeat([]string{"E"}, 100)...) // 151..250, past 192
	if got := store.StoredEventSeqs(s, "ctx"); len(got) != 0 {
		t.Errorf("event records %v left behind history", got)
	}
	wantEvents(t, s, c.ID, 0, 1000, seqs(151, 250))
}

// TestPebbleHistoryMerge reads every stretch of a history made of txs with none to
// three events and member changes between them: as written, then from a data dir in
// the layout before tx records held their events' root hashes (every event also in
// an event record), then with commits in the new layout after that.
func TestPebbleHistoryMerge(t *testing.T) {
	now := time.Now()
	s, c := newPebbleContext(t, store.HistoryConfig{MaxEvents: 10000}, "ctx", now)
	all, _, err := s.Events(t.Context(), "ctx", 0, 10)
	if err != nil || len(all) != 1 {
		t.Fatalf("genesis events %v, %v", all, err)
	}
	grow := func(n int) {
		for i := range n {
			if i%7 == 3 {
				before := c.EventSeq
				c = updateMembers(t, s, c, fmt.Sprint("m", i))
				evs, _, err := s.Events(t.Context(), "ctx", before+1, 10)
				if err != nil || len(evs) != 1 {
					t.Fatalf("member event: %v, %v", evs, err)
				}
				all = append(all, evs...)
				continue
			}
			tx := storetest.NextTx(c, now, []store.Write{storetest.Set("k", fmt.Sprint(i))}, slices.Repeat([]string{"E"}, i%4)...)
			if err := s.Commit(t.Context(), store.Commit{Tenant: c.Tenant, ContextID: c.ID, ExpectedSeq: c.Seq, Tx: tx}); err != nil {
				t.Fatal(err)
			}
			all = append(all, tx.Events...)
			c = storetest.Advance(c, tx)
		}
	}
	check := func(what string) {
		t.Helper()
		if uint64(len(all)) != c.EventSeq {
			t.Fatalf("%s: %d events made, eventSeq %d", what, len(all), c.EventSeq)
		}
		for from := uint64(0); from <= c.EventSeq+1; from++ {
			lo := max(from, 1) - 1
			for _, limit := range []int{1, 3, 10000} {
				evs, oldest, err := s.Events(t.Context(), "ctx", from, limit)
				if err != nil || oldest != 1 {
					t.Fatalf("%s: Events(%d, %d): oldest %d, err %v", what, from, limit, oldest, err)
				}
				storetest.SameEvents(t, fmt.Sprintf("%s: Events(%d, %d)", what, from, limit), evs, all[lo:min(lo+uint64(limit), uint64(len(all)))])
			}
		}
	}
	grow(150)
	check("as written")
	if got := store.StoredEventSeqs(s, "ctx"); len(got) != 21 {
		t.Errorf("%d event records, want the 21 member changes'", len(got))
	}
	store.WriteLegacyHistory(s, "ctx")
	check("legacy layout")
	grow(60)
	check("legacy layout, then new commits")
}

// TestPebbleHistoryDamaged: an event missing from both the tx log and the event
// records is an internal error, not a shorter history.
func TestPebbleHistoryDamaged(t *testing.T) {
	s, c := newPebbleContext(t, store.HistoryConfig{}, "ctx", time.Now())
	c = commitAt(t, s, c, time.Now(), "E")
	c = updateMembers(t, s, c, "m") // event 3
	commitAt(t, s, c, time.Now(), "E")
	store.DeleteEventRecord(s, "ctx", 3)
	for _, from := range []uint64{0, 3} {
		if evs, _, err := s.Events(t.Context(), "ctx", from, 10); !errs.Is(err, errs.Internal) {
			t.Errorf("Events(%d) with event 3 gone = %d events, %v; want an internal error", from, len(evs), err)
		}
	}
	if evs, _, err := s.Events(t.Context(), "ctx", 4, 10); err != nil || len(evs) != 1 || evs[0].Seq != 4 {
		t.Errorf("Events(4) = %v, %v; want event 4", evs, err)
	}
}

// TestPebbleCommitForeignRootHash: an event's RootHash other than its tx's hash is
// refused (the tx record keeps only whether the two are equal), and nothing changes.
func TestPebbleCommitForeignRootHash(t *testing.T) {
	s, c := newPebbleContext(t, store.HistoryConfig{}, "ctx", time.Now())
	tx := storetest.NextTx(c, time.Now(), []store.Write{storetest.Set("k", "v")}, "E")
	tx.Events[0].RootHash = strings.Repeat("ab", 32)
	err := s.Commit(t.Context(), store.Commit{Tenant: c.Tenant, ContextID: c.ID, ExpectedSeq: c.Seq, Tx: tx})
	if !errs.Is(err, errs.Internal) {
		t.Fatalf("Commit with a foreign rootHash: %v, want an internal error", err)
	}
	if got, err := s.GetContext(t.Context(), c.Tenant, c.ID); err != nil || got.Seq != c.Seq || got.EventSeq != c.EventSeq {
		t.Errorf("after the refused commit: seq %d, eventSeq %d, %v", got.Seq, got.EventSeq, err)
	}
}

// TestPebbleHistoryWhileCommitting: reads of history beside commits and member
// changes of the same context, which delete the event records history leaves
// behind, always see a whole history.
func TestPebbleHistoryWhileCommitting(t *testing.T) {
	s, c := newPebbleContext(t, store.HistoryConfig{MaxEvents: 8}, "ctx", time.Now())
	stop := make(chan struct{})
	var reads, failures atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				evs, oldest, err := s.Events(t.Context(), "ctx", 0, 100)
				for i := range evs {
					if err == nil && evs[i].Seq != oldest+uint64(i) {
						err = fmt.Errorf("events %v from oldest %d", storetest.EventSeqs(evs), oldest)
					}
				}
				reads.Add(1)
				if err != nil {
					failures.Add(1)
					first.CompareAndSwap(nil, err.Error())
				}
			}
		})
	}
	for i := range 300 {
		if i%3 == 0 {
			c = updateMembers(t, s, c, fmt.Sprint("m", i))
		} else {
			c = commitAt(t, s, c, time.Now(), "E")
		}
	}
	close(stop)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Errorf("%d of %d reads beside commits failed, the first with: %v", n, reads.Load(), first.Load())
	}
}

func updateMembers(t *testing.T, s store.Store, c store.Context, member string) store.Context {
	t.Helper()
	got, _, err := s.UpdateMembers(t.Context(), c.Tenant, c.ID, []string{member}, nil, store.Event{Kind: "MembersChanged", Time: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	c.EventSeq, c.Members = got.EventSeq, got.Members
	return c
}

// wantEvents checks the seqs Events(from, limit) returns.
func wantEvents(t *testing.T, s store.Store, id string, from uint64, limit int, want []uint64) {
	t.Helper()
	evs, _, err := s.Events(t.Context(), id, from, limit)
	if got := storetest.EventSeqs(evs); err != nil || !slices.Equal(got, want) {
		t.Errorf("Events(%d, %d) = %v, %v; want %v", from, limit, got, err, want)
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

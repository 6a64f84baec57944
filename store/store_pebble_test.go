package store_test

import (
	"fmt"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/store"
	"github.com/circlegate/circlegate/store/storetest"
)

func openPebble(t testing.TB, cfg store.PebbleConfig) *store.Pebble {
	t.Helper()
	s, err := store.OpenPebble(cfg)
	if err != nil {
		t.Fatalf("OpenPebble: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestPebble(t *testing.T) {
	storetest.Run(t, func(t *testing.T, h store.HistoryConfig) store.Store {
		return openPebble(t, store.PebbleConfig{Dir: t.TempDir(), History: h})
	})
}

// TestPebbleReopen: everything committed is there after Close and a new open of the
// same directory.
func TestPebbleReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := store.OpenPebble(store.PebbleConfig{Dir: dir})
	if err != nil {
		t.Fatalf("OpenPebble: %v", err)
	}
	app, _, err := s.PutApp(t.Context(), store.App{Tenant: "t"}, []byte("wasm"))
	if err != nil {
		t.Fatalf("PutApp: %v", err)
	}
	g := storetest.GenesisTx("ctx", time.Now(), []store.Write{storetest.Set("a", "1")}, "ContextCreated")
	c := storetest.NewContext("t", app.ID, "ctx", g)
	if err := s.CreateContext(t.Context(), c, g); err != nil {
		t.Fatalf("CreateContext: %v", err)
	}
	tx := storetest.NextTx(c, time.Now(), []store.Write{storetest.Set("b", "2")}, "Mutated")
	err = s.Commit(t.Context(), store.Commit{Tenant: "t", ContextID: "ctx", ExpectedSeq: 0, Tx: tx,
		IdempotencyKey: "job", Idempotency: store.Idempotency{Digest: "d", Result: []byte("r")}})
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := s.PutRecordLazy(t.Context(), "t", "log", "lazy", []byte("v")); err != nil {
		t.Fatalf("PutRecordLazy: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.GetContext(t.Context(), "t", "ctx"); err == nil {
		t.Errorf("GetContext after Close succeeded")
	}

	s = openPebble(t, store.PebbleConfig{Dir: dir})
	head, err := s.GetContext(t.Context(), "t", "ctx")
	if err != nil || head.Seq != 1 || head.RootHash != tx.Hash || head.EventSeq != 2 {
		t.Fatalf("GetContext after reopen = %+v, %v", head, err)
	}
	if blob, err := s.AppBlob(t.Context(), "t", app.ID); err != nil || string(blob) != "wasm" {
		t.Errorf("AppBlob after reopen = %q, %v", blob, err)
	}
	if v, ok, err := s.Get(t.Context(), "ctx", []byte("b")); err != nil || !ok || string(v) != "2" {
		t.Errorf("Get after reopen = %q, %v, %v", v, ok, err)
	}
	txs, err := s.TxLog(t.Context(), "ctx", 0, 10)
	if err != nil || len(txs) != 2 || store.VerifyChain(store.GenesisPrevHash, txs) != -1 {
		t.Errorf("TxLog after reopen: %d txs, err %v", len(txs), err)
	}
	if evs, _, err := s.Events(t.Context(), "ctx", 0, 10); err != nil || len(evs) != 2 {
		t.Errorf("Events after reopen: %d, %v", len(evs), err)
	}
	if rec, ok, err := s.Idempotent(t.Context(), "ctx", "job"); err != nil || !ok || string(rec.Result) != "r" {
		t.Errorf("Idempotent after reopen = %+v, %v, %v", rec, ok, err)
	}
	if keys, bytes, err := s.StateSize(t.Context(), "ctx"); err != nil || keys != 2 || bytes != 4 {
		t.Errorf("StateSize after reopen = %d, %d, %v", keys, bytes, err)
	}
	if v, ok, err := s.GetRecord(t.Context(), "t", "log", "lazy"); err != nil || !ok || string(v) != "v" {
		t.Errorf("GetRecord of a lazy record after Close and reopen = %q, %v, %v", v, ok, err)
	}
}

// TestPebbleLegacyHead: a data dir whose heads are JSON only (written before the
// binary head record) opens with the same contexts, and their chains go on.
func TestPebbleLegacyHead(t *testing.T) {
	dir := t.TempDir()
	s := openPebble(t, store.PebbleConfig{Dir: dir})
	c := createContext(t, s, "ctx", time.Now())
	tx := storetest.NextTx(c, time.Now(), []store.Write{storetest.Set("b", "22")}, "Mutated")
	if err := s.Commit(t.Context(), store.Commit{Tenant: "t", ContextID: "ctx", ExpectedSeq: 0, Tx: tx}); err != nil {
		t.Fatal(err)
	}
	c = storetest.Advance(c, tx)
	store.WriteLegacyHead(s, "ctx")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openPebble(t, store.PebbleConfig{Dir: dir})
	got, err := s.GetContext(t.Context(), "t", "ctx")
	if err != nil || got.Seq != c.Seq || got.RootHash != c.RootHash || got.EventSeq != c.EventSeq {
		t.Fatalf("GetContext of a legacy head = %+v, %v; want %+v", got, err, c)
	}
	if keys, bytes, err := s.StateSize(t.Context(), "ctx"); err != nil || keys != 2 || bytes != 5 {
		t.Errorf("StateSize of a legacy head = %d, %d, %v", keys, bytes, err)
	}
	tx = storetest.NextTx(c, time.Now(), []store.Write{storetest.Set("c", "3")}, "Mutated")
	if err := s.Commit(t.Context(), store.Commit{Tenant: "t", ContextID: "ctx", ExpectedSeq: c.Seq, Tx: tx}); err != nil {
		t.Fatalf("Commit after a legacy head: %v", err)
	}
	c = storetest.Advance(c, tx)
	if err := store.VerifyContext(t.Context(), s, c); err != nil {
		t.Errorf("VerifyContext: %v", err)
	}
}

// TestPebbleHeadInTxRecord: commits write no head record of their own, the head
// comes back from the last tx record after a reopen, and a member change (which
// writes the head record at the same seq as the last tx) wins over that tx. A data
// dir whose commits wrote the head record (version 2 tx records) opens the same.
func TestPebbleHeadInTxRecord(t *testing.T) {
	dir := t.TempDir()
	s, err := store.OpenPebble(store.PebbleConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // the store open last, after the reopens
		if s != nil {
			_ = s.Close()
		}
	})
	c := createContext(t, s, "ctx", time.Now())
	commit := func(s store.Store, key, value string) {
		t.Helper()
		tx := storetest.NextTx(c, time.Now(), []store.Write{storetest.Set(key, value)}, "Mutated")
		if err := s.Commit(t.Context(), store.Commit{Tenant: "t", ContextID: "ctx", ExpectedSeq: c.Seq, Tx: tx}); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		c = storetest.Advance(c, tx)
	}
	commit(s, "b", "22")
	commit(s, "c", "333")
	if seq, ok := store.HotSeq(s, "ctx"); !ok || seq != 0 {
		t.Errorf("after two commits the head record is at seq %d (%v), want 0 (creation's)", seq, ok)
	}
	c2, _, err := s.UpdateMembers(t.Context(), "t", "ctx", []string{"m"}, nil, store.Event{Kind: "MembersChanged", Time: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	c.EventSeq, c.Members = c2.EventSeq, c2.Members
	if seq, ok := store.HotSeq(s, "ctx"); !ok || seq != 2 {
		t.Errorf("after a member change the head record is at seq %d (%v), want 2", seq, ok)
	}
	reopen := func() {
		t.Helper()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if s, err = store.OpenPebble(store.PebbleConfig{Dir: dir}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, keys, bytes int64) {
		t.Helper()
		got, err := s.GetContext(t.Context(), "t", "ctx")
		if err != nil || got.Seq != c.Seq || got.RootHash != c.RootHash || got.EventSeq != c.EventSeq || !slices.Equal(got.Members, c.Members) {
			t.Fatalf("%s: GetContext = %+v, %v; want %+v", what, got, err, c)
		}
		if k, b, err := s.StateSize(t.Context(), "ctx"); err != nil || k != keys || b != bytes {
			t.Errorf("%s: StateSize = %d, %d, %v; want %d, %d", what, k, b, err, keys, bytes)
		}
	}
	reopen()
	check("after a member change", 3, 9)
	commit(s, "d", "4444")
	reopen()
	check("after a commit that followed a member change", 4, 14)

	store.WriteOldCommitHead(s, "ctx", true)
	reopen()
	check("with a version 2 last tx and its head record", 4, 14)
	commit(s, "e", "55555")
	reopen()
	check("after a commit on an old-format head", 5, 20)
	if err := store.VerifyContext(t.Context(), s, c); err != nil {
		t.Errorf("VerifyContext: %v", err)
	}

	store.WriteOldCommitHead(s, "ctx", false)
	reopen()
	if _, err := s.GetContext(t.Context(), "t", "ctx"); errs.KindOf(err) != errs.Internal {
		t.Errorf("GetContext with a last tx newer than any head = %v, want an internal error", err)
	}
}

// TestPebbleCommitRejectsInconsistentTx: a tx that does not fit the head it claims
// is an internal error and changes nothing.
func TestPebbleCommitRejectsInconsistentTx(t *testing.T) {
	s := openPebble(t, store.PebbleConfig{Dir: t.TempDir()})
	app, _, _ := s.PutApp(t.Context(), store.App{Tenant: "t"}, []byte("wasm"))
	g := storetest.GenesisTx("ctx", time.Now(), nil)
	c := storetest.NewContext("t", app.ID, "ctx", g)
	if err := s.CreateContext(t.Context(), c, g); err != nil {
		t.Fatalf("CreateContext: %v", err)
	}
	rehash := func(tx store.Tx) store.Tx { tx.Hash = store.TxHash(&tx); return tx }
	good := storetest.NextTx(c, time.Now(), []store.Write{storetest.Set("k", "v")}, "Mutated")
	bad := map[string]store.Tx{
		"seq skips":      rehash(func() store.Tx { tx := good; tx.Seq = 2; return tx }()),
		"wrong prevHash": rehash(func() store.Tx { tx := good; tx.PrevHash = store.GenesisPrevHash; return tx }()),
		"wrong hash":     func() store.Tx { tx := good; tx.Method = "other"; return tx }(),
		"event gap": rehash(func() store.Tx {
			tx := good
			tx.Events = append([]store.Event{}, good.Events...)
			tx.Events = append(tx.Events, store.Event{Seq: 5, Kind: "Gap"})
			return tx
		}()),
	}
	for name, tx := range bad {
		err := s.Commit(t.Context(), store.Commit{Tenant: "t", ContextID: "ctx", ExpectedSeq: 0, Tx: tx})
		if !errs.Is(err, errs.Internal) || err == nil {
			t.Errorf("%s: error %v, want kind internal", name, err)
		}
	}
	if head, _ := s.GetContext(t.Context(), "t", "ctx"); head.Seq != 0 {
		t.Errorf("a rejected tx moved the head to %d", head.Seq)
	}
	bad2 := g
	bad2.Hash = "00"
	c2 := storetest.NewContext("t", app.ID, "ctx2", bad2)
	if err := s.CreateContext(t.Context(), c2, bad2); !errs.Is(err, errs.Internal) {
		t.Errorf("CreateContext with a bad genesis hash: %v", err)
	}
}

func TestPebbleConfig(t *testing.T) {
	if _, err := store.OpenPebble(store.PebbleConfig{}); err == nil {
		t.Errorf("OpenPebble without a dir succeeded")
	}
	cfg := store.PebbleConfig{Dir: "x"}.WithDefaults()
	if cfg.CacheBytes != 64<<20 || cfg.MemTableBytes != 32<<20 || cfg.History.MaxEvents != 1000 ||
		cfg.History.MaxAge != 24*time.Hour || cfg.Logger == nil {
		t.Errorf("defaults: %+v", cfg)
	}
	for _, bad := range []store.PebbleConfig{
		{Dir: "x", CacheBytes: -1},
		{Dir: "x", MemTableBytes: 1},
		{Dir: "x", History: store.HistoryConfig{MaxEvents: -1}},
		{Dir: "x", History: store.HistoryConfig{MaxAge: -time.Second}},
	} {
		if err := bad.WithDefaults().Validate(); err == nil {
			t.Errorf("Validate(%+v) accepted it", bad)
		}
	}
}

// BenchmarkPebbleCommit commits from many goroutines to 1,000 contexts; each
// goroutine owns its contexts, so no commit is stale. Synced commits of different
// contexts share WAL fsyncs, so commits/s grows with the number of committers.
func BenchmarkPebbleCommit(b *testing.B) {
	for _, par := range []int{1, 8, 64} {
		b.Run(fmt.Sprint("goroutines=", par*maxProcs()), func(b *testing.B) {
			benchCommit(b, par)
		})
	}
}

func benchCommit(b *testing.B, parallelism int) {
	const contexts = 1000
	s, heads := benchContexts(b, contexts)
	var next atomic.Int64
	b.SetParallelism(parallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		g := int(next.Add(1) - 1) // goroutine g owns contexts g, g+n, g+2n, ...
		n := parallelism * maxProcs()
		for i := g; pb.Next(); i += n {
			if i >= contexts {
				i = g
			}
			h := &heads[i]
			tx := storetest.NextTx(*h, time.Now(), []store.Write{storetest.Set("counter", fmt.Sprint(h.Seq))}, "Mutated")
			if err := s.Commit(b.Context(), store.Commit{Tenant: "t", ContextID: h.ID, ExpectedSeq: h.Seq, Tx: tx}); err != nil {
				b.Error(err)
				return
			}
			*h = storetest.Advance(*h, tx)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
}

func maxProcs() int { return runtime.GOMAXPROCS(0) }

// BenchmarkPebbleCommitMany commits rounds of jobs to distinct contexts with one
// CommitMany each, as the execution workers do.
func BenchmarkPebbleCommitMany(b *testing.B) {
	for _, round := range []int{1, 16, 64} {
		b.Run(fmt.Sprint("round=", round), func(b *testing.B) {
			const contexts = 1000
			s, heads := benchContexts(b, contexts)
			b.ResetTimer()
			next := 0
			for b.Loop() {
				cs := make([]store.Commit, round)
				for j := range cs {
					h := &heads[(next+j)%contexts]
					tx := storetest.NextTx(*h, time.Now(), []store.Write{storetest.Set("counter", fmt.Sprint(h.Seq))}, "Mutated")
					cs[j] = store.Commit{Tenant: "t", ContextID: h.ID, ExpectedSeq: h.Seq, Tx: tx}
				}
				for j, err := range s.CommitMany(b.Context(), cs) {
					if err != nil {
						b.Fatal(err)
					}
					h := &heads[(next+j)%contexts]
					*h = storetest.Advance(*h, cs[j].Tx)
				}
				next += round
			}
			b.ReportMetric(float64(b.N*round)/b.Elapsed().Seconds(), "commits/s")
		})
	}
}

// benchContexts opens a Pebble store in a temp dir with n fresh contexts of one app.
func benchContexts(b *testing.B, n int) (*store.Pebble, []store.Context) {
	s := openPebble(b, store.PebbleConfig{Dir: b.TempDir()})
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%032x", i)
	}
	return s, storetest.CreateContexts(b, s, "t", ids...)
}

// BenchmarkPebbleGetFullHistory: a commit to a context whose history is full (it
// deletes the oldest event) followed by a point read of a missing key, as a
// webhook's delivery does (its idempotency record, the ledger's seen check).
func BenchmarkPebbleGetFullHistory(b *testing.B) {
	s := openPebble(b, store.PebbleConfig{Dir: b.TempDir(), History: store.HistoryConfig{MaxEvents: 16}, StateCacheBytes: -1})
	app, _, err := s.PutApp(b.Context(), store.App{Tenant: "t"}, []byte("wasm"))
	if err != nil {
		b.Fatal(err)
	}
	g := storetest.GenesisTx("ctx", time.Now(), nil, "ContextCreated")
	c := storetest.NewContext("t", app.ID, "ctx", g)
	if err := s.CreateContext(b.Context(), c, g); err != nil {
		b.Fatal(err)
	}
	commit := func() {
		tx := storetest.NextTx(c, time.Now(), []store.Write{storetest.Set("k", "v")}, "Mutated")
		if err := s.Commit(b.Context(), store.Commit{Tenant: "t", ContextID: "ctx", ExpectedSeq: c.Seq, Tx: tx}); err != nil {
			b.Fatal(err)
		}
		c = storetest.Advance(c, tx)
	}
	for range 1000 {
		commit()
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		commit()
		if _, ok, err := s.Get(b.Context(), "ctx", fmt.Appendf(nil, "missing/%d", i)); err != nil || ok {
			b.Fatal(ok, err)
		}
	}
}

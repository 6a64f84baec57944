package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/store"
)

func testCommit(t *testing.T, open Opener) {
	s := newStore(t, open, store.HistoryConfig{})
	app := installApp(t, s, tenantA, "app")
	c := createContext(t, s, tenantA, app.ID, Set("g", "genesis"), Set("keep", "1"))
	g := allTxs(t, s, c.ID)
	tx := NextTx(c, time.Now(), []store.Write{Set("k1", "v1"), Set("k2", "v2"), Del("g")}, "Mutated", "AppEvent")
	rec := store.Idempotency{Digest: "digest-1", Result: []byte(`{"ok":true}`)}
	err := s.Commit(t.Context(), store.Commit{Tenant: tenantA, ContextID: c.ID, ExpectedSeq: c.Seq, Tx: tx,
		IdempotencyKey: "job-1", Idempotency: rec})
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	checkScan(t, s, c.ID, "", "", 100, []string{"k1", "k2", "keep"})
	txs, err := s.TxLog(t.Context(), c.ID, 1, 10)
	if err != nil {
		t.Fatalf("TxLog: %v", err)
	}
	sameTxs(t, "TxLog(1)", txs, []store.Tx{tx})
	sameTxs(t, "TxLog(0)", allTxs(t, s, c.ID), append(g, tx))
	want := Advance(c, tx)
	sameContext(t, "head after commit", mustGetContext(t, s, tenantA, c.ID), want)
	if want.Seq != 1 || want.EventSeq != c.EventSeq+2 {
		t.Errorf("head seq %d, eventSeq %d", want.Seq, want.EventSeq)
	}
	evs, _, err := s.Events(t.Context(), c.ID, c.EventSeq+1, 10)
	if err != nil {
		t.Fatalf("Events: %v", err)
	}
	SameEvents(t, "events of the tx", evs, tx.Events)
	got, ok, err := s.Idempotent(t.Context(), c.ID, "job-1")
	if err != nil || !ok || got.Digest != rec.Digest || string(got.Result) != string(rec.Result) {
		t.Errorf("Idempotent(job-1) = %+v, %v, %v", got, ok, err)
	}
	if _, ok, err := s.Idempotent(t.Context(), c.ID, "job-2"); err != nil || ok {
		t.Errorf("Idempotent(job-2) = %v, %v; want not found", ok, err)
	}
	verifyChain(t, s, want)
}

func testCommitStale(t *testing.T, open Opener) {
	s := newStore(t, open, store.HistoryConfig{})
	app := installApp(t, s, tenantA, "app")
	c0 := createContext(t, s, tenantA, app.ID, Set("k", "0"))
	c1 := commitNext(t, s, c0, []store.Write{Set("k", "1")}, "Mutated")
	before := takeSnapshot(t, s, tenantA, c0.ID)

	stale := []struct {
		name     string
		expected uint64
		tx       store.Tx
	}{
		{"executed on the previous head", c0.Seq, NextTx(c0, time.Now(), []store.Write{Set("k", "stale")}, "Mutated")},
		{"expects a seq ahead", c1.Seq + 5, NextTx(store.Context{ID: c1.ID, Seq: c1.Seq + 5, RootHash: c1.RootHash,
			EventSeq: c1.EventSeq}, time.Now(), []store.Write{Set("k", "ahead")})},
	}
	for _, tc := range stale {
		err := s.Commit(t.Context(), store.Commit{Tenant: tenantA, ContextID: c0.ID, ExpectedSeq: tc.expected, Tx: tc.tx,
			IdempotencyKey: "job-stale", Idempotency: store.Idempotency{Digest: "d"}})
		wantStale(t, tc.name, err)
		if errors.Is(err, store.ErrTaken) {
			t.Errorf("%s: error %v is ErrTaken, but no commit recorded its key", tc.name, err)
		}
		sameSnapshot(t, tc.name, takeSnapshot(t, s, tenantA, c0.ID), before)
		if _, ok, err := s.Idempotent(t.Context(), c0.ID, "job-stale"); err != nil || ok {
			t.Errorf("%s: idempotency recorded (%v, %v)", tc.name, ok, err)
		}
	}
	commitNext(t, s, c1, []store.Write{Set("k", "2")}) // the fresh head still commits
}

// testCommitStaleEvents: a tx executed before UpdateMembers appended an event carries
// event seqs that are taken, so Commit refuses it as stale.
func testCommitStaleEvents(t *testing.T, open Opener) {
	s := newStore(t, open, store.HistoryConfig{})
	app := installApp(t, s, tenantA, "app")
	c := createContext(t, s, tenantA, app.ID)
	tx := NextTx(c, time.Now(), []store.Write{Set("k", "v")}, "Mutated")
	c, _, err := s.UpdateMembers(t.Context(), tenantA, c.ID, []string{"m"}, nil, store.Event{Kind: "MembersChanged", Time: time.Now()})
	if err != nil {
		t.Fatalf("UpdateMembers: %v", err)
	}
	before := takeSnapshot(t, s, tenantA, c.ID)
	err = s.Commit(t.Context(), store.Commit{Tenant: tenantA, ContextID: c.ID, ExpectedSeq: c.Seq, Tx: tx})
	wantStale(t, "tx with taken event seqs", err)
	sameSnapshot(t, "after the stale commit", takeSnapshot(t, s, tenantA, c.ID), before)
	commitNext(t, s, c, []store.Write{Set("k", "v")}, "Mutated")
}

func testCommitDeletedContext(t *testing.T, open Opener) {
	s := newStore(t, open, store.HistoryConfig{})
	app := installApp(t, s, tenantA, "app")
	c := createContext(t, s, tenantA, app.ID)
	if err := s.DeleteContext(t.Context(), tenantA, c.ID); err != nil {
		t.Fatalf("DeleteContext: %v", err)
	}
	tx := NextTx(c, time.Now(), []store.Write{Set("k", "v")}, "Mutated")
	err := s.Commit(t.Context(), store.Commit{Tenant: tenantA, ContextID: c.ID, ExpectedSeq: c.Seq, Tx: tx})
	wantKind(t, "Commit to a deleted context", err, errs.NotFound)
	_, err = s.GetContext(t.Context(), tenantA, c.ID)
	wantKind(t, "GetContext after a commit to a deleted context", err, errs.NotFound)
	wantGone(t, s, c.ID)
}

func testDeleteContext(t *testing.T, open Opener) {
	s := newStore(t, open, store.HistoryConfig{})
	app := installApp(t, s, tenantA, "app")
	victim := createContext(t, s, tenantA, app.ID, Set("k", "victim"))
	kept := createContext(t, s, tenantA, app.ID, Set("k", "kept"))
	for _, c := range []store.Context{victim, kept} {
		tx := NextTx(c, time.Now(), []store.Write{Set("k2", c.ID)}, "Mutated")
		err := s.Commit(t.Context(), store.Commit{Tenant: tenantA, ContextID: c.ID, ExpectedSeq: c.Seq, Tx: tx,
			IdempotencyKey: "job", Idempotency: store.Idempotency{Digest: c.ID}})
		if err != nil {
			t.Fatalf("Commit: %v", err)
		}
	}
	before := takeSnapshot(t, s, tenantA, kept.ID)
	wantKind(t, "DeleteContext by another tenant", s.DeleteContext(t.Context(), tenantB, victim.ID), errs.NotFound)
	if err := s.DeleteContext(t.Context(), tenantA, victim.ID); err != nil {
		t.Fatalf("DeleteContext: %v", err)
	}
	_, err := s.GetContext(t.Context(), tenantA, victim.ID)
	wantKind(t, "GetContext after delete", err, errs.NotFound)
	wantKind(t, "DeleteContext twice", s.DeleteContext(t.Context(), tenantA, victim.ID), errs.NotFound)
	wantGone(t, s, victim.ID)
	sameSnapshot(t, "the other context", takeSnapshot(t, s, tenantA, kept.ID), before)
	if _, ok, err := s.Idempotent(t.Context(), kept.ID, "job"); err != nil || !ok {
		t.Errorf("the other context's idempotency record: %v, %v", ok, err)
	}

	fresh := createContext(t, s, tenantA, app.ID)
	checkScan(t, s, fresh.ID, "", "", 100, nil)
	if txs := allTxs(t, s, fresh.ID); len(txs) != 1 {
		t.Errorf("a new context's log holds %d txs", len(txs))
	}
	if _, ok, err := s.Idempotent(t.Context(), fresh.ID, "job"); err != nil || ok {
		t.Errorf("a new context has an idempotency record: %v, %v", ok, err)
	}
	cs, err := s.ListContexts(t.Context(), tenantA)
	if err != nil || len(cs) != 2 {
		t.Errorf("ListContexts after delete = %d contexts, %v; want 2", len(cs), err)
	}
}

// testRecreatedContext: a context created with the id of a deleted one has only its
// own state, however the deleted one's state was read and written before.
func testRecreatedContext(t *testing.T, open Opener) {
	s := newStore(t, open, store.HistoryConfig{})
	app := installApp(t, s, tenantA, "app")
	old := createContext(t, s, tenantA, app.ID, Set("genesis", "old"))
	old = commitNext(t, s, old, []store.Write{Set("k", "old"), Set("gone", "x")})
	tx := NextTx(old, time.Now(), []store.Write{Del("gone")}, "Mutated")
	err := s.Commit(t.Context(), store.Commit{Tenant: tenantA, ContextID: old.ID, ExpectedSeq: old.Seq, Tx: tx,
		IdempotencyKey: "job", Idempotency: store.Idempotency{Digest: "d", Result: []byte(`"r"`)}})
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	for _, k := range []string{"genesis", "k", "gone", "never"} { // read every kind of key once
		if _, _, err := s.Get(t.Context(), old.ID, []byte(k)); err != nil {
			t.Fatalf("Get(%s): %v", k, err)
		}
	}
	for _, k := range []string{"job", "other-job"} {
		if _, _, err := s.Idempotent(t.Context(), old.ID, k); err != nil {
			t.Fatalf("Idempotent(%s): %v", k, err)
		}
	}
	if err := s.DeleteContext(t.Context(), tenantA, old.ID); err != nil {
		t.Fatalf("DeleteContext: %v", err)
	}
	g := GenesisTx(old.ID, time.Now(), []store.Write{Set("gone", "new")}, "ContextCreated")
	fresh := NewContext(tenantA, app.ID, old.ID, g)
	if err := s.CreateContext(t.Context(), fresh, g); err != nil {
		t.Fatalf("CreateContext with the deleted context's id: %v", err)
	}
	for k, want := range map[string]string{"genesis": "", "k": "", "gone": "new", "never": ""} {
		v, ok, err := s.Get(t.Context(), fresh.ID, []byte(k))
		if err != nil || ok != (want != "") || string(v) != want {
			t.Errorf("Get(%s) in the new context = %q, %v, %v; want %q", k, v, ok, err, want)
		}
	}
	if keys, _, err := s.StateSize(t.Context(), fresh.ID); err != nil || keys != 1 {
		t.Errorf("StateSize of the new context = %d keys, %v; want 1", keys, err)
	}
	if _, ok, err := s.Idempotent(t.Context(), fresh.ID, "job"); err != nil || ok {
		t.Errorf("the new context has the deleted one's idempotency record: %v, %v", ok, err)
	}
}

// wantGone checks that nothing of a deleted context can be read: each read either
// fails with NotFound or finds nothing.
func wantGone(t *testing.T, s store.Store, id string) {
	t.Helper()
	gone := func(what string, err error, n int) {
		t.Helper()
		if (err != nil && !errs.Is(err, errs.NotFound)) || (err == nil && n != 0) {
			t.Errorf("%s of a deleted context: %d found, err %v", what, n, err)
		}
	}
	_, ok, err := s.Get(t.Context(), id, []byte("k"))
	gone("Get", err, boolInt(ok))
	kvs, err := s.Scan(t.Context(), id, nil, nil, 100)
	gone("Scan", err, len(kvs))
	txs, err := s.TxLog(t.Context(), id, 0, 100)
	gone("TxLog", err, len(txs))
	evs, _, err := s.Events(t.Context(), id, 0, 100)
	gone("Events", err, len(evs))
	_, ok, err = s.Idempotent(t.Context(), id, "job")
	gone("Idempotent", err, boolInt(ok))
	keys, _, err := s.StateSize(t.Context(), id)
	gone("StateSize", err, int(keys))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// testCommitMany: commits to several contexts in one call apply independently; a stale
// one changes nothing while the others apply, and two commits to one context are
// refused.
func testCommitMany(t *testing.T, open Opener) {
	s := newStore(t, open, store.HistoryConfig{})
	app := installApp(t, s, tenantA, "app")
	a := createContext(t, s, tenantA, app.ID)
	b := commitNext(t, s, createContext(t, s, tenantA, app.ID), []store.Write{Set("k", "b1")})
	c := createContext(t, s, tenantA, app.ID)
	bBefore := takeSnapshot(t, s, tenantA, b.ID)
	now := time.Now()
	staleB := store.Commit{Tenant: tenantA, ContextID: b.ID, ExpectedSeq: b.Seq - 1,
		Tx: NextTx(store.Context{ID: b.ID, Seq: b.Seq - 1, RootHash: b.RootHash, EventSeq: b.EventSeq}, now, []store.Write{Set("k", "stale")})}
	txA := NextTx(a, now, []store.Write{Set("k", "a1")}, "Mutated")
	txC := NextTx(c, now, []store.Write{Set("k", "c1")})
	errs := s.CommitMany(t.Context(), []store.Commit{
		{Tenant: tenantA, ContextID: a.ID, ExpectedSeq: a.Seq, Tx: txA},
		staleB,
		{Tenant: tenantA, ContextID: c.ID, ExpectedSeq: c.Seq, Tx: txC},
	})
	if len(errs) != 3 || errs[0] != nil || errs[2] != nil {
		t.Fatalf("CommitMany = %v, want nil, stale, nil", errs)
	}
	wantStale(t, "stale commit in a batch", errs[1])
	sameSnapshot(t, "stale context", takeSnapshot(t, s, tenantA, b.ID), bBefore)
	for _, want := range []store.Context{Advance(a, txA), Advance(c, txC)} {
		sameContext(t, "committed in a batch", mustGetContext(t, s, tenantA, want.ID), want)
		if v, ok, err := s.Get(t.Context(), want.ID, []byte("k")); err != nil || !ok || len(v) != 2 {
			t.Errorf("state of %s after CommitMany: %q %v %v", want.ID, v, ok, err)
		}
	}
	a = Advance(a, txA)
	tx1 := NextTx(a, now, nil)
	errs = s.CommitMany(t.Context(), []store.Commit{
		{Tenant: tenantA, ContextID: a.ID, ExpectedSeq: a.Seq, Tx: tx1},
		{Tenant: tenantA, ContextID: a.ID, ExpectedSeq: a.Seq, Tx: tx1},
	})
	if errs[0] != nil || errs[1] == nil {
		t.Fatalf("two commits to one context: %v, want the second refused", errs)
	}
}

// testCommitIdempotencyKeyTaken: a commit whose idempotency key is recorded already
// (kept, or with a TTL) fails with ErrTaken and changes nothing, on the fresh head
// and on the head before the commit that recorded it (a second delivery of a job
// that ran beside the first), so a job delivered twice commits once and its second
// run knows to read the first one's result.
func testCommitIdempotencyKeyTaken(t *testing.T, open Opener) {
	s := newStore(t, open, store.HistoryConfig{})
	app := installApp(t, s, tenantA, "app")
	c := createContext(t, s, tenantA, app.ID)
	for _, ttl := range []time.Duration{0, time.Hour} {
		key := fmt.Sprintf("key-ttl-%s", ttl)
		first := store.Idempotency{Digest: "d1", Result: []byte(`{"first":true}`)}
		tx := NextTx(c, time.Now(), []store.Write{Set("k", key)}, "Mutated")
		err := s.Commit(t.Context(), store.Commit{Tenant: tenantA, ContextID: c.ID, ExpectedSeq: c.Seq, Tx: tx,
			IdempotencyKey: key, Idempotency: first, IdempotencyTTL: ttl})
		if err != nil {
			t.Fatalf("ttl %s: first Commit: %v", ttl, err)
		}
		prev := c
		c = Advance(c, tx)
		before := takeSnapshot(t, s, tenantA, c.ID)
		for _, head := range []store.Context{c, prev} {
			again := NextTx(head, time.Now(), []store.Write{Set("k", "twice")}, "Mutated")
			err = s.Commit(t.Context(), store.Commit{Tenant: tenantA, ContextID: c.ID, ExpectedSeq: head.Seq, Tx: again,
				IdempotencyKey: key, Idempotency: store.Idempotency{Digest: "d2"}, IdempotencyTTL: ttl})
			if !errors.Is(err, store.ErrTaken) || !errors.Is(err, store.ErrStale) {
				t.Errorf("ttl %s: a second commit with the same key on seq %d (the context's is %d): error %v, want ErrTaken (which is also ErrStale)",
					ttl, head.Seq, c.Seq, err)
			}
		}
		sameSnapshot(t, "after the refused commit", takeSnapshot(t, s, tenantA, c.ID), before)
		rec, ok, err := s.Idempotent(t.Context(), c.ID, key)
		if err != nil || !ok || rec.Digest != "d1" || string(rec.Result) != string(first.Result) {
			t.Errorf("ttl %s: Idempotent = %+v, %v, %v; want the first record", ttl, rec, ok, err)
		}
	}
}

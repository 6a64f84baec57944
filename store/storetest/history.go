package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/circlegate/circlegate/store"
)

func testEvents(t *testing.T, open Opener) {
	s := newStore(t, open, store.HistoryConfig{})
	app := installApp(t, s, tenantA, "app")
	id := newID()
	g := GenesisTx(id, time.Now(), nil) // no events: history starts empty
	c := NewContext(tenantA, app.ID, id, g)
	if err := s.CreateContext(t.Context(), c, g); err != nil {
		t.Fatalf("CreateContext: %v", err)
	}
	if evs, oldest, err := s.Events(t.Context(), id, 0, 10); err != nil || len(evs) != 0 || oldest != 0 {
		t.Errorf("Events of an empty history = %d events, oldest %d, err %v", len(evs), oldest, err)
	}
	var all []store.Event
	for i := range 5 {
		tx := NextTx(c, time.Now(), nil, slices.Repeat([]string{"Tick"}, i)...)
		if err := s.Commit(t.Context(), store.Commit{Tenant: tenantA, ContextID: id, ExpectedSeq: c.Seq, Tx: tx}); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		all = append(all, tx.Events...)
		c = Advance(c, tx)
	}
	last := uint64(len(all))
	tests := []struct {
		from  uint64
		limit int
		want  []uint64
	}{
		{0, 100, seqRange(1, last)},
		{1, 100, seqRange(1, last)},
		{4, 3, seqRange(4, 6)},
		{last, 10, []uint64{last}},
		{last + 1, 10, nil},
		{0, 1, []uint64{1}},
	}
	for _, tc := range tests {
		evs, oldest, err := s.Events(t.Context(), id, tc.from, tc.limit)
		if err != nil || oldest != 1 {
			t.Errorf("Events(%d, %d): oldest %d, err %v", tc.from, tc.limit, oldest, err)
		}
		if got := EventSeqs(evs); !slices.Equal(got, tc.want) && len(got)+len(tc.want) > 0 {
			t.Errorf("Events(%d, %d) seqs %v, want %v", tc.from, tc.limit, got, tc.want)
		}
	}
	evs, _, _ := s.Events(t.Context(), id, 0, 100)
	SameEvents(t, "all events", evs, all)
}

func testHistoryMaxEvents(t *testing.T, open Opener) {
	const max = 5
	s := newStore(t, open, store.HistoryConfig{MaxEvents: max})
	app := installApp(t, s, tenantA, "app")
	c := createContext(t, s, tenantA, app.ID) // event 1
	for range 4 {
		c = commitNext(t, s, c, []store.Write{Set("k", "v")}, "A", "B", "C")
	}
	// 13 events so far; history holds the last 5, 9..13.
	wantHistory(t, s, c.ID, c.EventSeq-max+1, c.EventSeq)
	c, _, err := s.UpdateMembers(t.Context(), tenantA, c.ID, []string{"m"}, nil, store.Event{Kind: "MembersChanged", Time: time.Now()})
	if err != nil {
		t.Fatalf("UpdateMembers: %v", err)
	}
	wantHistory(t, s, c.ID, c.EventSeq-max+1, c.EventSeq)
	c = commitNext(t, s, c, nil, slices.Repeat([]string{"Burst"}, 2*max)...) // more than the bound in one tx
	wantHistory(t, s, c.ID, c.EventSeq-max+1, c.EventSeq)
	if txs := allTxs(t, s, c.ID); uint64(len(txs)) != c.Seq+1 {
		t.Errorf("trimming history trimmed the log: %d txs", len(txs))
	}
}

// wantHistory checks that history holds exactly the events lo..hi: Events from
// anything older starts at lo, and reports lo as oldest.
func wantHistory(t *testing.T, s store.Store, id string, lo, hi uint64) {
	t.Helper()
	for _, from := range []uint64{0, 1, lo - 1, lo} {
		evs, oldest, err := s.Events(t.Context(), id, from, 100)
		if err != nil || oldest != lo {
			t.Errorf("Events(%d): oldest %d, err %v; want oldest %d", from, oldest, err, lo)
		}
		if got := EventSeqs(evs); !slices.Equal(got, seqRange(lo, hi)) {
			t.Errorf("Events(%d) seqs %v, want %d..%d", from, got, lo, hi)
		}
	}
	evs, oldest, err := s.Events(t.Context(), id, hi, 100)
	if err != nil || oldest != lo || !slices.Equal(EventSeqs(evs), []uint64{hi}) {
		t.Errorf("Events(%d) = %v, oldest %d, err %v", hi, EventSeqs(evs), oldest, err)
	}
}

func testHistoryMaxAge(t *testing.T, open Opener) {
	s := newStore(t, open, store.HistoryConfig{MaxEvents: 100, MaxAge: time.Hour})
	app := installApp(t, s, tenantA, "app")
	now := time.Now()
	id := newID()
	g := GenesisTx(id, now.Add(-3*time.Hour), nil, "ContextCreated")
	c := NewContext(tenantA, app.ID, id, g)
	if err := s.CreateContext(t.Context(), c, g); err != nil {
		t.Fatalf("CreateContext: %v", err)
	}
	if evs, oldest, err := s.Events(t.Context(), id, 0, 100); err != nil || len(evs) != 0 || oldest != 0 {
		t.Errorf("all expired: Events = %v, oldest %d, err %v; want none", EventSeqs(evs), oldest, err)
	}
	old := NextTx(c, now.Add(-2*time.Hour), nil, "Old1", "Old2")
	commitTx(t, s, c, old)
	c = Advance(c, old)
	fresh := NextTx(c, now, nil, "New1", "New2")
	commitTx(t, s, c, fresh)
	c = Advance(c, fresh)
	lo := fresh.Events[0].Seq
	wantHistory(t, s, id, lo, c.EventSeq)
	c = commitNext(t, s, c, nil, "New3")
	wantHistory(t, s, id, lo, c.EventSeq)
	if txs := allTxs(t, s, id); len(txs) != 4 {
		t.Errorf("expiring history trimmed the log: %d txs", len(txs))
	}
}

func commitTx(t *testing.T, s store.Store, head store.Context, tx store.Tx) {
	t.Helper()
	err := s.Commit(t.Context(), store.Commit{Tenant: head.Tenant, ContextID: head.ID, ExpectedSeq: head.Seq, Tx: tx})
	if err != nil {
		t.Fatalf("Commit seq %d: %v", tx.Seq, err)
	}
}

package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/store"
)

func testCreateContext(t *testing.T, open Opener) {
	s := newStore(t, open, store.HistoryConfig{})
	app := installApp(t, s, tenantA, "app")
	id := newID()
	g := GenesisTx(id, time.Now(), []store.Write{Set("count", "0"), Set("name", "c")}, "ContextCreated")
	c := NewContext(tenantA, app.ID, id, g)
	c.Members, c.Public = []string{"owner", "member-1"}, true
	if err := s.CreateContext(t.Context(), c, g); err != nil {
		t.Fatalf("CreateContext: %v", err)
	}
	sameContext(t, "GetContext", mustGetContext(t, s, tenantA, id), c)
	txs, err := s.TxLog(t.Context(), id, 0, 10)
	if err != nil {
		t.Fatalf("TxLog: %v", err)
	}
	sameTxs(t, "TxLog(0)", txs, []store.Tx{g})
	if v, ok, err := s.Get(t.Context(), id, []byte("count")); err != nil || !ok || string(v) != "0" {
		t.Errorf("Get(count) = %q, %v, %v", v, ok, err)
	}
	evs, oldest, err := s.Events(t.Context(), id, 0, 10)
	if err != nil || oldest != 1 {
		t.Fatalf("Events = oldest %d, err %v", oldest, err)
	}
	SameEvents(t, "genesis events", evs, g.Events)
}

func testCreateContextErrors(t *testing.T, open Opener) {
	s := newStore(t, open, store.HistoryConfig{})
	app := installApp(t, s, tenantA, "app")
	c := createContext(t, s, tenantA, app.ID)

	g := GenesisTx(c.ID, time.Now(), []store.Write{Set("other", "1")})
	dup := NewContext(tenantA, app.ID, c.ID, g)
	wantKind(t, "CreateContext with an existing id", s.CreateContext(t.Context(), dup, g), errs.Conflict)
	installApp(t, s, tenantB, "app")
	dup.Tenant = tenantB
	wantKind(t, "CreateContext with an id of another tenant", s.CreateContext(t.Context(), dup, g), errs.Conflict)
	if _, ok, _ := s.Get(t.Context(), c.ID, []byte("other")); ok {
		t.Errorf("a refused CreateContext wrote its genesis state")
	}

	id := newID()
	g = GenesisTx(id, time.Now(), nil)
	missing := NewContext(tenantA, appID("not installed"), id, g)
	wantKind(t, "CreateContext of a missing app", s.CreateContext(t.Context(), missing, g), errs.NotFound)
	other := installApp(t, s, tenantB, "only in B")
	missing.AppID = other.ID
	wantKind(t, "CreateContext of another tenant's app", s.CreateContext(t.Context(), missing, g), errs.NotFound)
	_, err := s.GetContext(t.Context(), tenantA, id)
	wantKind(t, "GetContext of a refused context", err, errs.NotFound)
}

func testContextTenantIsolation(t *testing.T, open Opener) {
	s := newStore(t, open, store.HistoryConfig{})
	app := installApp(t, s, tenantA, "app")
	c := createContext(t, s, tenantA, app.ID, Set("k", "v"))
	_, err := s.GetContext(t.Context(), tenantB, c.ID)
	wantKind(t, "GetContext of another tenant's context", err, errs.NotFound)
	_, err = s.GetContext(t.Context(), tenantA, newID())
	wantKind(t, "GetContext of a missing context", err, errs.NotFound)
	_, _, err = s.UpdateMembers(t.Context(), tenantB, c.ID, []string{"intruder"}, nil, store.Event{Kind: "MembersChanged"})
	wantKind(t, "UpdateMembers of another tenant's context", err, errs.NotFound)
	tx := NextTx(c, time.Now(), []store.Write{Set("k", "hijacked")})
	err = s.Commit(t.Context(), store.Commit{Tenant: tenantB, ContextID: c.ID, ExpectedSeq: c.Seq, Tx: tx})
	wantKind(t, "Commit to another tenant's context", err, errs.NotFound)
	wantKind(t, "DeleteContext of another tenant's context", s.DeleteContext(t.Context(), tenantB, c.ID), errs.NotFound)
	sameContext(t, "context after another tenant's calls", mustGetContext(t, s, tenantA, c.ID), c)
	if v, _, _ := s.Get(t.Context(), c.ID, []byte("k")); string(v) != "v" {
		t.Errorf("state after another tenant's commit: %q", v)
	}
}

func testListContexts(t *testing.T, open Opener) {
	s := newStore(t, open, store.HistoryConfig{})
	appA := installApp(t, s, tenantA, "app")
	appB := installApp(t, s, tenantB, "app")
	var idsA, idsB []string
	for range 6 {
		idsA = append(idsA, createContext(t, s, tenantA, appA.ID).ID)
	}
	for range 2 {
		idsB = append(idsB, createContext(t, s, tenantB, appB.ID).ID)
	}
	slices.Sort(idsA)
	slices.Sort(idsB)
	for _, tc := range []struct {
		tenant string
		want   []string
	}{{tenantA, idsA}, {tenantB, idsB}, {"02c3", nil}} {
		cs, err := s.ListContexts(t.Context(), tc.tenant)
		if err != nil {
			t.Fatalf("ListContexts: %v", err)
		}
		var got []string
		for _, c := range cs {
			got = append(got, c.ID)
			if c.Tenant != tc.tenant {
				t.Errorf("ListContexts(%s) returned a context of %s", tc.tenant, c.Tenant)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("ListContexts(%s) = %v, want %v", tc.tenant, got, tc.want)
		}
	}
}

func testUpdateMembers(t *testing.T, open Opener) {
	s := newStore(t, open, store.HistoryConfig{})
	app := installApp(t, s, tenantA, "app")
	c := createContext(t, s, tenantA, app.ID)
	c = commitNext(t, s, c, []store.Write{Set("k", "v")}, "Mutated")
	steps := []struct {
		add, remove []string
		want        []string
	}{
		{[]string{"m1", "m2"}, nil, []string{"owner", "m1", "m2"}},
		{[]string{"m1"}, nil, []string{"owner", "m1", "m2"}},
		{nil, []string{"m2"}, []string{"owner", "m1"}},
		{nil, []string{"m2"}, []string{"owner", "m1"}},
		{[]string{"m3"}, []string{"m1"}, []string{"owner", "m3"}},
	}
	var want []store.Event
	for i, st := range steps {
		ev := store.Event{ContextID: c.ID, Kind: "MembersChanged", Data: []byte(`{"step":1}`), Time: time.Now()}
		got, gotEv, err := s.UpdateMembers(t.Context(), tenantA, c.ID, st.add, st.remove, ev)
		if err != nil {
			t.Fatalf("step %d: UpdateMembers: %v", i, err)
		}
		if !sameSet(got.Members, st.want) {
			t.Errorf("step %d: members %v, want %v", i, got.Members, st.want)
		}
		if gotEv.Seq != c.EventSeq+1 || got.EventSeq != gotEv.Seq || gotEv.Kind != ev.Kind {
			t.Errorf("step %d: event seq %d, context eventSeq %d, want %d", i, gotEv.Seq, got.EventSeq, c.EventSeq+1)
		}
		if got.Seq != c.Seq || got.RootHash != c.RootHash {
			t.Errorf("step %d: UpdateMembers changed seq or rootHash", i)
		}
		ev.Seq = gotEv.Seq
		want = append(want, ev)
		c = got
		sameContext(t, "GetContext after UpdateMembers", mustGetContext(t, s, tenantA, c.ID), c)
	}
	evs, _, err := s.Events(t.Context(), c.ID, want[0].Seq, 100)
	if err != nil {
		t.Fatalf("Events: %v", err)
	}
	SameEvents(t, "lifecycle events", evs, want)
	commitNext(t, s, c, nil, "AfterMembers") // the next tx numbers its events after them
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

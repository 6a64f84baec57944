package storetest

import (
	"maps"
	"strings"
	"testing"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/store"
)

// testSnapshots checks the optional SnapshotReader: each ref gets the head GetContext
// returns and, when the state is small enough, exactly the state Get reads; another
// tenant's, an unknown and a malformed id are NotFound, without spoiling the others.
func testSnapshots(t *testing.T, open Opener) {
	s := newStore(t, open, store.HistoryConfig{})
	sr, ok := s.(store.SnapshotReader)
	if !ok {
		t.Skip("optional: this backend reads locally and has no SnapshotReader")
	}
	app := installApp(t, s, tenantA, "snap")
	small := createContext(t, s, tenantA, app.ID, Set("a", "1"), Set("b\x00\xff", "2"))
	small = commitNext(t, s, small, []store.Write{Set("c", "3"), Del("a")}, "Set")
	big := createContext(t, s, tenantA, app.ID, Set("k", strings.Repeat("v", 2000)))
	empty := createContext(t, s, tenantA, app.ID)
	appB := installApp(t, s, tenantB, "snap")
	other := createContext(t, s, tenantB, appB.ID, Set("x", "y"))

	refs := []store.ContextRef{
		{Tenant: tenantA, ID: small.ID},
		{Tenant: tenantA, ID: big.ID},
		{Tenant: tenantA, ID: other.ID},
		{Tenant: tenantA, ID: newID()},
		{Tenant: tenantA, ID: "bad{id}"},
		{Tenant: tenantA, ID: empty.ID},
	}
	got := sr.Snapshots(t.Context(), refs, 1024)
	if len(got) != len(refs) {
		t.Fatalf("Snapshots returned %d snapshots for %d refs", len(got), len(refs))
	}
	for i, want := range []store.Context{small, big, {}, {}, {}, empty} {
		g := got[i]
		if want.ID == "" {
			wantKind(t, "snapshot of "+refs[i].ID, g.Err, errs.NotFound)
			continue
		}
		if g.Err != nil {
			t.Fatalf("snapshot of %s: %v", want.ID, g.Err)
		}
		sameContext(t, "snapshot head", g.Context, mustGetContext(t, s, tenantA, want.ID))
	}
	wantState := map[string][]byte{"b\x00\xff": []byte("2"), "c": []byte("3")}
	if !got[0].Full || !maps.EqualFunc(got[0].State, wantState, func(a, b []byte) bool { return string(a) == string(b) }) {
		t.Errorf("small context: Full %v, State %q, want the whole state %q", got[0].Full, got[0].State, wantState)
	}
	if got[1].Full || got[1].State != nil {
		t.Errorf("2000-byte state under a 1024-byte limit: Full %v, %d keys, want no state", got[1].Full, len(got[1].State))
	}
	if !got[5].Full || len(got[5].State) != 0 {
		t.Errorf("empty context: Full %v, State %q, want a full, empty state", got[5].Full, got[5].State)
	}
}

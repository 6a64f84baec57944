package storetest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/circlegate/circlegate/store"
)

func testRecords(t *testing.T, open Opener) {
	s := open(t, store.HistoryConfig{})
	ctx := t.Context()
	if _, found, err := s.GetRecord(ctx, tenantA, "route", "r1"); err != nil || found {
		t.Fatalf("GetRecord on empty store = found %v, %v", found, err)
	}
	for i := range 5 {
		id := fmt.Sprintf("r%d", i)
		if err := s.PutRecord(ctx, tenantA, "route", id, []byte("v"+id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutRecord(ctx, tenantA, "route", "r2", []byte("replaced")); err != nil {
		t.Fatal(err)
	}
	v, found, err := s.GetRecord(ctx, tenantA, "route", "r2")
	if err != nil || !found || string(v) != "replaced" {
		t.Fatalf("GetRecord(r2) = %q, %v, %v; want replaced", v, found, err)
	}
	ids := func(recs []store.Record) []string {
		var out []string
		for _, r := range recs {
			out = append(out, r.ID)
		}
		return out
	}
	cases := []struct {
		after   string
		limit   int
		reverse bool
		want    []string
	}{
		{"", 10, false, []string{"r0", "r1", "r2", "r3", "r4"}},
		{"", 2, false, []string{"r0", "r1"}},
		{"r1", 2, false, []string{"r2", "r3"}},
		{"r4", 2, false, nil},
		{"", 2, true, []string{"r4", "r3"}},
		{"r3", 10, true, []string{"r2", "r1", "r0"}},
		{"r0", 10, true, nil},
	}
	for _, c := range cases {
		recs, err := s.ListRecords(ctx, tenantA, "route", c.after, c.limit, c.reverse)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(recs); !slices.Equal(got, c.want) {
			t.Errorf("ListRecords(after %q, limit %d, reverse %v) = %v, want %v", c.after, c.limit, c.reverse, got, c.want)
		}
	}
	if l, ok := s.(store.RecordIDLister); ok {
		for _, c := range cases {
			got, err := l.ListRecordIDs(ctx, tenantA, "route", c.after, c.limit, c.reverse)
			if err != nil || !slices.Equal(got, c.want) {
				t.Errorf("ListRecordIDs(after %q, limit %d, reverse %v) = %v, %v; want %v", c.after, c.limit, c.reverse, got, err, c.want)
			}
		}
		if _, err := l.ListRecordIDs(ctx, tenantA, "route", "", 0, false); err == nil {
			t.Error("ListRecordIDs with limit 0: want an error")
		}
	}
	recs, _ := s.ListRecords(ctx, tenantA, "route", "r0", 1, false)
	if len(recs) != 1 || string(recs[0].Value) != "vr1" {
		t.Errorf("ListRecords value = %+v, want r1 = vr1", recs)
	}
	if existed, err := s.DeleteRecord(ctx, tenantA, "route", "r1"); err != nil || !existed {
		t.Fatalf("DeleteRecord(r1) = %v, %v; want existed", existed, err)
	}
	if existed, err := s.DeleteRecord(ctx, tenantA, "route", "r1"); err != nil || existed {
		t.Fatalf("second DeleteRecord(r1) = %v, %v; want not existed", existed, err)
	}
	if _, found, _ := s.GetRecord(ctx, tenantA, "route", "r1"); found {
		t.Fatal("deleted record still found")
	}
	if d, ok := s.(store.RecordsDeleter); ok {
		testDeleteRecords(t, s, d)
	}
	if l, ok := s.(store.LazyRecordPutter); ok {
		testLazyRecords(t, s, l)
	}
	if _, err := s.ListRecords(ctx, tenantA, "route", "", 0, false); err == nil {
		t.Error("ListRecords with limit 0: want an error")
	}
	if err := s.PutRecord(ctx, tenantA, "", "x", nil); err == nil {
		t.Error("PutRecord with an empty kind: want an error")
	}
}

// testRecordsIsolation: records of one tenant or kind are invisible from another, even
// when one name is a prefix of the other.
func testRecordsIsolation(t *testing.T, open Opener) {
	s := open(t, store.HistoryConfig{})
	ctx := t.Context()
	puts := []struct{ tenant, kind, id string }{
		{tenantA, "secret", "a"},
		{tenantB, "secret", "b"},
		{tenantA, "secrets", "c"},
		{"", "secret", "node"},
	}
	for _, p := range puts {
		if err := s.PutRecord(ctx, p.tenant, p.kind, p.id, []byte(p.id)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range puts {
		recs, err := s.ListRecords(ctx, p.tenant, p.kind, "", 10, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 || recs[0].ID != p.id {
			t.Errorf("ListRecords(%q, %q) = %+v, want only %q", p.tenant, p.kind, recs, p.id)
		}
	}
	if _, found, _ := s.GetRecord(ctx, tenantB, "secret", "a"); found {
		t.Error("tenant B reads tenant A's record")
	}
}

// testDeleteRecords checks the optional RecordsDeleter: the listed records of one
// (tenant, kind) go, missing ids are skipped, other tenants and kinds keep theirs.
func testDeleteRecords(t *testing.T, s store.Store, d store.RecordsDeleter) {
	ctx := t.Context()
	for _, id := range []string{"a", "b", "c"} {
		for _, put := range []struct{ tenant, kind string }{{tenantA, "log"}, {tenantA, "other"}, {tenantB, "log"}} {
			if err := s.PutRecord(ctx, put.tenant, put.kind, id, []byte(id)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := d.DeleteRecords(ctx, tenantA, "log", []string{"a", "c", "missing"}); err != nil {
		t.Fatalf("DeleteRecords: %v", err)
	}
	if err := d.DeleteRecords(ctx, tenantA, "log", nil); err != nil {
		t.Fatalf("DeleteRecords of no ids: %v", err)
	}
	for _, c := range []struct {
		tenant, kind string
		want         []string
	}{{tenantA, "log", []string{"b"}}, {tenantA, "other", []string{"a", "b", "c"}}, {tenantB, "log", []string{"a", "b", "c"}}} {
		recs, err := s.ListRecords(ctx, c.tenant, c.kind, "", 10, false)
		var got []string
		for _, r := range recs {
			got = append(got, r.ID)
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("records of %s/%s after DeleteRecords = %v, %v; want %v", c.tenant[:4], c.kind, got, err, c.want)
		}
	}
}

// testLazyRecords: a record stored by PutRecordLazy reads and lists like one stored by
// PutRecord, at once, and replaces it.
func testLazyRecords(t *testing.T, s store.Store, l store.LazyRecordPutter) {
	ctx := t.Context()
	if err := s.PutRecord(ctx, tenantA, "lazy", "a", []byte("synced")); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		if err := l.PutRecordLazy(ctx, tenantA, "lazy", id, []byte("lazy "+id)); err != nil {
			t.Fatalf("PutRecordLazy(%s): %v", id, err)
		}
	}
	if v, found, err := s.GetRecord(ctx, tenantA, "lazy", "a"); err != nil || !found || string(v) != "lazy a" {
		t.Errorf("GetRecord after PutRecordLazy = %q, %v, %v; want the lazy value", v, found, err)
	}
	recs, err := s.ListRecords(ctx, tenantA, "lazy", "", 10, true)
	if err != nil || len(recs) != 2 || recs[0].ID != "b" || string(recs[0].Value) != "lazy b" {
		t.Errorf("ListRecords after PutRecordLazy = %+v, %v; want b, a", recs, err)
	}
	if _, found, _ := s.GetRecord(ctx, tenantB, "lazy", "b"); found {
		t.Error("a lazy record of tenant A is found in tenant B")
	}
	if err := l.PutRecordLazy(ctx, tenantA, "", "x", nil); err == nil {
		t.Error("PutRecordLazy with an empty kind: want an error")
	}
}

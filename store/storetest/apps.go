package storetest

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/store"
)

func testPutAppIdempotent(t *testing.T, open Opener) {
	s := newStore(t, open, store.HistoryConfig{})
	blob := []byte("\x00asm counter")
	in := store.App{ID: appID(string(blob)), Tenant: tenantA, Name: "counter", Version: "1",
		InstalledAt: time.Now().UTC(), InstalledBy: "key-1"}
	first, created, err := s.PutApp(t.Context(), in, blob)
	if err != nil || !created {
		t.Fatalf("PutApp: created %v, err %v", created, err)
	}
	if first.ID != in.ID || first.Tenant != tenantA || first.Size != len(blob) || first.Name != "counter" {
		t.Errorf("PutApp stored %+v", first)
	}
	again := in
	again.Name, again.InstalledBy = "other name", "key-2"
	second, created, err := s.PutApp(t.Context(), again, blob)
	if err != nil || created {
		t.Fatalf("PutApp again: created %v, err %v", created, err)
	}
	if second.ID != first.ID || second.Name != first.Name || second.InstalledBy != first.InstalledBy ||
		!second.InstalledAt.Equal(first.InstalledAt) {
		t.Errorf("PutApp again returned %+v, want the first %+v", second, first)
	}
	got, err := s.GetApp(t.Context(), tenantA, first.ID)
	if err != nil || got.Name != "counter" || got.Size != len(blob) {
		t.Errorf("GetApp = %+v, %v", got, err)
	}
	b, err := s.AppBlob(t.Context(), tenantA, first.ID)
	if err != nil || !bytes.Equal(b, blob) {
		t.Errorf("AppBlob = %q, %v", b, err)
	}
	apps, err := s.ListApps(t.Context(), tenantA)
	if err != nil || len(apps) != 1 {
		t.Errorf("ListApps = %+v, %v; want one app", apps, err)
	}
}

func testAppTenantIsolation(t *testing.T, open Opener) {
	s := newStore(t, open, store.HistoryConfig{})
	app := installApp(t, s, tenantA, "blob-a")
	_, err := s.GetApp(t.Context(), tenantB, app.ID)
	wantKind(t, "GetApp of another tenant", err, errs.NotFound)
	_, err = s.AppBlob(t.Context(), tenantB, app.ID)
	wantKind(t, "AppBlob of another tenant", err, errs.NotFound)
	wantKind(t, "DeleteApp of another tenant", s.DeleteApp(t.Context(), tenantB, app.ID), errs.NotFound)
	if apps, err := s.ListApps(t.Context(), tenantB); err != nil || len(apps) != 0 {
		t.Errorf("ListApps(B) = %+v, %v; want none", apps, err)
	}

	// The same blob in tenant B is B's own install; deleting it leaves A's.
	_, created, err := s.PutApp(t.Context(), store.App{ID: app.ID, Tenant: tenantB}, []byte("blob-a"))
	if err != nil || !created {
		t.Fatalf("PutApp in B: created %v, err %v", created, err)
	}
	if err := s.DeleteApp(t.Context(), tenantB, app.ID); err != nil {
		t.Fatalf("DeleteApp(B): %v", err)
	}
	if _, err := s.GetApp(t.Context(), tenantA, app.ID); err != nil {
		t.Errorf("GetApp(A) after B deleted its copy: %v", err)
	}
	if b, err := s.AppBlob(t.Context(), tenantA, app.ID); err != nil || string(b) != "blob-a" {
		t.Errorf("AppBlob(A) after B deleted its copy = %q, %v", b, err)
	}
}

func testListAppsOrder(t *testing.T, open Opener) {
	s := newStore(t, open, store.HistoryConfig{})
	var ids []string
	for _, blob := range []string{"e", "d", "c", "b", "a", "ff", "0"} {
		ids = append(ids, installApp(t, s, tenantA, blob).ID)
	}
	installApp(t, s, tenantB, "only-b")
	slices.Sort(ids)
	apps, err := s.ListApps(t.Context(), tenantA)
	if err != nil {
		t.Fatalf("ListApps: %v", err)
	}
	var got []string
	for _, a := range apps {
		got = append(got, a.ID)
		if a.Tenant != tenantA {
			t.Errorf("ListApps(A) returned an app of %s", a.Tenant)
		}
	}
	if !slices.Equal(got, ids) {
		t.Errorf("ListApps ids %v, want %v", got, ids)
	}
}

func testDeleteAppInUse(t *testing.T, open Opener) {
	s := newStore(t, open, store.HistoryConfig{})
	app := installApp(t, s, tenantA, "used")
	c := createContext(t, s, tenantA, app.ID)
	wantKind(t, "DeleteApp in use", s.DeleteApp(t.Context(), tenantA, app.ID), errs.Conflict)
	if _, err := s.GetApp(t.Context(), tenantA, app.ID); err != nil {
		t.Errorf("GetApp after refused delete: %v", err)
	}
	if err := s.DeleteContext(t.Context(), tenantA, c.ID); err != nil {
		t.Fatalf("DeleteContext: %v", err)
	}
	if err := s.DeleteApp(t.Context(), tenantA, app.ID); err != nil {
		t.Fatalf("DeleteApp after the context is gone: %v", err)
	}
	_, err := s.GetApp(t.Context(), tenantA, app.ID)
	wantKind(t, "GetApp after delete", err, errs.NotFound)
	_, err = s.AppBlob(t.Context(), tenantA, app.ID)
	wantKind(t, "AppBlob after delete", err, errs.NotFound)
	wantKind(t, "DeleteApp twice", s.DeleteApp(t.Context(), tenantA, app.ID), errs.NotFound)
}

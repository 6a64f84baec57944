package webhooks

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circlegate/circlegate/store"
	"github.com/circlegate/circlegate/tenant"
)

// countingStore counts the record writes of a Pebble store by durability.
type countingStore struct {
	*store.Pebble
	synced, lazy atomic.Int64
}

func (c *countingStore) PutRecord(ctx context.Context, tenant, kind, id string, value []byte) error {
	c.synced.Add(1)
	return c.Pebble.PutRecord(ctx, tenant, kind, id, value)
}

func (c *countingStore) PutRecordLazy(ctx context.Context, tenant, kind, id string, value []byte) error {
	c.lazy.Add(1)
	return c.Pebble.PutRecordLazy(ctx, tenant, kind, id, value)
}

// TestDeliveryLogSync: a delivery log entry is written without a sync by default and
// with one under sync_delivery_log, and either way it is in webhook.deliveries when
// Deliver returns.
func TestDeliveryLogSync(t *testing.T) {
	const tk = "02a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
	for _, sync := range []bool{false, true} {
		p, err := store.OpenPebble(store.PebbleConfig{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		st := &countingStore{Pebble: p}
		tenants := tenant.NewRegistry()
		if _, err := tenants.Add(tenant.Tenant{PubKey: tk}); err != nil {
			t.Fatal(err)
		}
		s, err := NewService(Config{SyncDeliveryLog: sync}, tenants, st, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AddConfigSecret(tk, Stripe, "", stripeSecret); err != nil {
			t.Fatal(err)
		}
		body := stripeEvent("evt_1", "payment_intent.succeeded", "2020-08-27")
		h := http.Header{}
		h.Set(StripeSignatureHeader, signStripe(body, stripeOther, time.Now())) // refused: no secret matches
		resp := s.Deliver(t.Context(), Request{Provider: Stripe, TenantKey: tk, Header: h, Body: strings.NewReader(string(body))})
		if resp.Outcome != OutcomeBadSignature || resp.DeliveryID == "" {
			t.Fatalf("sync %v: Deliver = %d %s %q; want a logged bad_signature", sync, resp.Status, resp.Outcome, resp.DeliveryID)
		}
		list, _, err := s.Deliveries(t.Context(), tk, 10, "")
		if err != nil || len(list) != 1 || list[0].ID != resp.DeliveryID || list[0].Outcome != OutcomeBadSignature {
			t.Errorf("sync %v: Deliveries = %+v, %v; want the one delivery", sync, list, err)
		}
		wantSynced, wantLazy := int64(0), int64(1)
		if sync {
			wantSynced, wantLazy = 1, 0
		}
		if st.synced.Load() != wantSynced || st.lazy.Load() != wantLazy {
			t.Errorf("sync %v: %d synced and %d lazy record writes, want %d and %d", sync, st.synced.Load(), st.lazy.Load(), wantSynced, wantLazy)
		}
	}
}

// plainStore hides the optional interfaces of the store it holds.
type plainStore struct{ store.Store }

// TestDeliveryLogPrune: the log keeps the newest max_deliveries entries (a tenth more
// for a moment), whether or not the store lists ids alone and deletes in one write.
func TestDeliveryLogPrune(t *testing.T) {
	const tk = "02a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
	for _, plain := range []bool{false, true} {
		p, err := store.OpenPebble(store.PebbleConfig{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		var st store.Store = p
		if plain {
			st = plainStore{p}
		}
		tenants := tenant.NewRegistry()
		if _, err := tenants.Add(tenant.Tenant{PubKey: tk}); err != nil {
			t.Fatal(err)
		}
		s, err := NewService(Config{MaxDeliveries: 20}, tenants, st, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for range 125 {
			resp := s.Deliver(t.Context(), Request{Provider: Stripe, TenantKey: tk, Header: http.Header{}, Body: strings.NewReader("{}")})
			if resp.Outcome != OutcomeBadSignature {
				t.Fatalf("plain %v: Deliver = %s, want bad_signature", plain, resp.Outcome)
			}
			ids = append(ids, resp.DeliveryID)
		}
		list, _, err := s.Deliveries(t.Context(), tk, 100, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(list) < 20 || len(list) > 22 {
			t.Fatalf("plain %v: the log holds %d entries, want 20 to 22", plain, len(list))
		}
		for i, d := range list {
			if want := ids[len(ids)-1-i]; d.ID != want {
				t.Fatalf("plain %v: entry %d is %s, want %s (the newest first, none missing)", plain, i, d.ID, want)
			}
		}
	}
}

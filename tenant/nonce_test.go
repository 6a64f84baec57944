package tenant

import (
	"context"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/circlegate/circlegate/errs"
)

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

const (
	tenantA = "tenant-a"
	tenantB = "tenant-b"
	keyA    = "key-a"
	keyB    = "key-b"
)

func newTestNonces(t *testing.T, cfg NonceConfig) (*MemoryNonceStore, *fakeClock) {
	t.Helper()
	clock := newFakeClock()
	cfg.Now = clock.Now
	return NewMemoryNonceStore(cfg), clock
}

func mustIssue(t *testing.T, s NonceStore, tenant, key string) Nonce {
	t.Helper()
	n, err := s.Issue(context.Background(), tenant, key)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func wantBadNonce(t *testing.T, err error) {
	t.Helper()
	wantKind(t, err, errs.InvalidCredentials, "nonce unknown, expired, used or issued for another key")
}

func TestNonceIssueFormatAndDefaults(t *testing.T) {
	s, clock := newTestNonces(t, NonceConfig{})
	hex64 := regexp.MustCompile(`^[0-9a-f]{64}$`)
	seen := map[string]bool{}
	for range 4 {
		n := mustIssue(t, s, tenantA, keyA)
		if !hex64.MatchString(n.Value) || seen[n.Value] {
			t.Fatalf("nonce %q is not fresh 64-char lowercase hex", n.Value)
		}
		seen[n.Value] = true
		if want := clock.Now().Add(300 * time.Second); !n.ExpiresAt.Equal(want) {
			t.Fatalf("ExpiresAt %v, want %v (default TTL 300s)", n.ExpiresAt, want)
		}
	}
	cfg := s.cfg
	if cfg.MaxPerKey != 4 || cfg.MaxPerTenant != 10000 || cfg.TTL != 300*time.Second {
		t.Fatalf("defaults %+v", cfg)
	}
}

func TestNonceSingleUse(t *testing.T) {
	s, _ := newTestNonces(t, NonceConfig{})
	ctx := context.Background()
	n := mustIssue(t, s, tenantA, keyA)
	if err := s.Consume(ctx, tenantA, keyA, n.Value); err != nil {
		t.Fatalf("first Consume: %v", err)
	}
	wantBadNonce(t, s.Consume(ctx, tenantA, keyA, n.Value))
	if s.Len(tenantA) != 0 {
		t.Fatalf("Len = %d after consume", s.Len(tenantA))
	}
}

func TestNonceConsumeRefusals(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		tenant string
		key    string
		value  func(Nonce) string
	}{
		{"unknown value", tenantA, keyA, func(Nonce) string { return "00" }},
		{"empty value", tenantA, keyA, func(Nonce) string { return "" }},
		{"other key", tenantA, keyB, func(n Nonce) string { return n.Value }},
		{"other tenant", tenantB, keyA, func(n Nonce) string { return n.Value }},
		{"unknown tenant", "nobody", keyA, func(n Nonce) string { return n.Value }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestNonces(t, NonceConfig{})
			n := mustIssue(t, s, tenantA, keyA)
			mustIssue(t, s, tenantB, keyB) // tenant B exists
			wantBadNonce(t, s.Consume(ctx, tt.tenant, tt.key, tt.value(n)))
			// A refusal does not burn the nonce for its rightful owner.
			if err := s.Consume(ctx, tenantA, keyA, n.Value); err != nil {
				t.Fatalf("owner's Consume after refusal: %v", err)
			}
		})
	}
}

func TestNonceExpiry(t *testing.T) {
	s, clock := newTestNonces(t, NonceConfig{TTL: time.Minute})
	ctx := context.Background()
	early := mustIssue(t, s, tenantA, keyA)
	late := mustIssue(t, s, tenantA, keyA)
	clock.Advance(time.Minute - time.Nanosecond)
	if err := s.Consume(ctx, tenantA, keyA, early.Value); err != nil {
		t.Fatalf("Consume just before expiry: %v", err)
	}
	clock.Advance(time.Nanosecond) // now == ExpiresAt
	wantBadNonce(t, s.Consume(ctx, tenantA, keyA, late.Value))
	if got, _ := s.Outstanding(ctx, tenantA, keyA); len(got) != 0 {
		t.Fatalf("Outstanding after expiry = %v", got)
	}
	if s.Len(tenantA) != 0 || s.Evicted() != 0 {
		t.Fatalf("Len %d, Evicted %d after expiry", s.Len(tenantA), s.Evicted())
	}
}

func TestNonceOutstandingNewestFirst(t *testing.T) {
	s, clock := newTestNonces(t, NonceConfig{TTL: time.Minute})
	ctx := context.Background()
	var issued []string
	for range 3 {
		issued = append(issued, mustIssue(t, s, tenantA, keyA).Value)
		clock.Advance(20 * time.Second)
	}
	mustIssue(t, s, tenantA, keyB)
	mustIssue(t, s, tenantB, keyA)
	// Now the first nonce is exactly 60s old: expired.
	got, err := s.Outstanding(ctx, tenantA, keyA)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{issued[2], issued[1]}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Outstanding = %v, want %v", got, want)
	}
	if got, _ := s.Outstanding(ctx, "nobody", keyA); len(got) != 0 {
		t.Fatalf("Outstanding of unknown tenant = %v", got)
	}
}

func TestNoncePerKeyBound(t *testing.T) {
	s, _ := newTestNonces(t, NonceConfig{MaxPerKey: 2})
	ctx := context.Background()
	first := mustIssue(t, s, tenantA, keyA)
	second := mustIssue(t, s, tenantA, keyA)
	third := mustIssue(t, s, tenantA, keyA)
	other := mustIssue(t, s, tenantA, keyB)
	if s.Len(tenantA) != 3 || s.Evicted() != 1 {
		t.Fatalf("Len %d, Evicted %d; want 3, 1", s.Len(tenantA), s.Evicted())
	}
	wantBadNonce(t, s.Consume(ctx, tenantA, keyA, first.Value))
	for _, n := range []Nonce{second, third} {
		if err := s.Consume(ctx, tenantA, keyA, n.Value); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Consume(ctx, tenantA, keyB, other.Value); err != nil {
		t.Fatal(err)
	}
}

func TestNoncePerTenantBound(t *testing.T) {
	s, _ := newTestNonces(t, NonceConfig{MaxPerTenant: 10})
	ctx := context.Background()
	legit := mustIssue(t, s, tenantA, "legit")
	for i := range 100 { // an unauthenticated flood of fresh keys
		mustIssue(t, s, tenantA, fmt.Sprintf("flood-%d", i))
	}
	mustIssue(t, s, tenantB, keyA)
	if s.Len(tenantA) != 10 || s.Evicted() != 91 || s.Len(tenantB) != 1 {
		t.Fatalf("Len %d, Evicted %d, Len(B) %d; want 10, 91, 1", s.Len(tenantA), s.Evicted(), s.Len(tenantB))
	}
	wantBadNonce(t, s.Consume(ctx, tenantA, "legit", legit.Value))
	// The flood does not lock the user out: a fresh nonce works.
	fresh := mustIssue(t, s, tenantA, "legit")
	if err := s.Consume(ctx, tenantA, "legit", fresh.Value); err != nil {
		t.Fatalf("fresh nonce after flood: %v", err)
	}
}

func TestNonceFullTenantDropsExpiredFirst(t *testing.T) {
	s, clock := newTestNonces(t, NonceConfig{MaxPerTenant: 5, TTL: time.Minute})
	for i := range 5 {
		mustIssue(t, s, tenantA, fmt.Sprint(i))
	}
	clock.Advance(30 * time.Second)
	mustIssue(t, s, tenantA, "late") // full: evicts the oldest live one
	clock.Advance(30 * time.Second)  // the first five expire
	kept := mustIssue(t, s, tenantA, keyA)
	if s.Len(tenantA) != 2 || s.Evicted() != 1 {
		t.Fatalf("Len %d, Evicted %d; want 2, 1", s.Len(tenantA), s.Evicted())
	}
	if err := s.Consume(context.Background(), tenantA, keyA, kept.Value); err != nil {
		t.Fatal(err)
	}
}

func TestNonceExpiredCleanedOnIssue(t *testing.T) {
	s, clock := newTestNonces(t, NonceConfig{TTL: time.Second})
	for i := range 50 {
		mustIssue(t, s, tenantA, fmt.Sprint(i))
	}
	clock.Advance(time.Second)
	mustIssue(t, s, tenantA, keyA)
	tn := s.tenant(tenantA, false)
	tn.mu.Lock()
	held, keys := len(tn.byValue), len(tn.byKey)
	tn.mu.Unlock()
	if held != 1 || keys != 1 {
		t.Fatalf("after expiry and one Issue the tenant holds %d nonces of %d keys, want 1 and 1", held, keys)
	}
}

func TestNonceConcurrent(t *testing.T) {
	s := NewMemoryNonceStore(NonceConfig{MaxPerTenant: 50, MaxPerKey: 3})
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			tenant := fmt.Sprint("t", g%4)
			key := fmt.Sprint("k", g)
			for range 200 {
				n, err := s.Issue(ctx, tenant, key)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := s.Outstanding(ctx, tenant, key); err != nil {
					t.Error(err)
				}
				_ = s.Consume(ctx, tenant, key, n.Value) // may have been evicted
			}
		})
	}
	wg.Wait()
	for i := range 4 {
		if n := s.Len(fmt.Sprint("t", i)); n > 50 {
			t.Fatalf("tenant t%d holds %d nonces, bound is 50", i, n)
		}
	}
}

package tenant

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/internal/redistest"
)

// openNonces opens a nonce store configured by cfg whose clock is the given one.
type openNonces func(t *testing.T, cfg NonceConfig) NonceStore

// TestNonceStores runs the behaviour every NonceStore must have against the memory
// store and the Redis store (a real redis-server).
func TestNonceStores(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		testNonceStore(t, func(t *testing.T, cfg NonceConfig) NonceStore { return NewMemoryNonceStore(cfg) })
	})
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t, redistest.Options{})
		n := 0
		testNonceStore(t, func(t *testing.T, cfg NonceConfig) NonceStore {
			n++
			return NewRedisNonceStore(redisClient(t, srv), fmt.Sprint("test", n), cfg)
		})
	})
}

func redisClient(t *testing.T, srv *redistest.Server) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func testNonceStore(t *testing.T, open openNonces) {
	ctx := context.Background()
	newStore := func(t *testing.T, cfg NonceConfig) (NonceStore, *fakeClock) {
		clock := newFakeClock()
		cfg.Now = clock.Now
		return open(t, cfg), clock
	}
	consume := func(t *testing.T, s NonceStore, tenant, key, value string) {
		t.Helper()
		if err := s.Consume(ctx, tenant, key, value); err != nil {
			t.Fatalf("Consume(%s, %s): %v", tenant, key, err)
		}
	}
	t.Run("single use", func(t *testing.T) {
		s, clock := newStore(t, NonceConfig{})
		n := mustIssue(t, s, tenantA, keyA)
		if want := clock.Now().Add(300 * time.Second); !n.ExpiresAt.Equal(want) || len(n.Value) != 64 {
			t.Fatalf("nonce %+v, want 64 hex characters expiring at %v", n, want)
		}
		consume(t, s, tenantA, keyA, n.Value)
		wantBadNonce(t, s.Consume(ctx, tenantA, keyA, n.Value))
	})
	t.Run("refusals", func(t *testing.T) {
		s, _ := newStore(t, NonceConfig{})
		n := mustIssue(t, s, tenantA, keyA)
		mustIssue(t, s, tenantB, keyB)
		for _, c := range [][3]string{{tenantA, keyA, "00"}, {tenantA, keyA, ""}, {tenantA, keyB, n.Value}, {tenantB, keyA, n.Value}, {"nobody", keyA, n.Value}} {
			wantBadNonce(t, s.Consume(ctx, c[0], c[1], c[2]))
		}
		consume(t, s, tenantA, keyA, n.Value) // refusals do not burn it
	})
	t.Run("expiry", func(t *testing.T) {
		s, clock := newStore(t, NonceConfig{TTL: time.Minute})
		early := mustIssue(t, s, tenantA, keyA)
		late := mustIssue(t, s, tenantA, keyA)
		clock.Advance(time.Minute - time.Millisecond)
		consume(t, s, tenantA, keyA, early.Value)
		clock.Advance(time.Millisecond) // now == ExpiresAt
		wantBadNonce(t, s.Consume(ctx, tenantA, keyA, late.Value))
		if got, err := s.Outstanding(ctx, tenantA, keyA); err != nil || len(got) != 0 {
			t.Fatalf("Outstanding after expiry = %v, %v", got, err)
		}
	})
	t.Run("outstanding newest first", func(t *testing.T) {
		s, clock := newStore(t, NonceConfig{TTL: time.Minute})
		var issued []string
		for range 3 {
			issued = append(issued, mustIssue(t, s, tenantA, keyA).Value)
			clock.Advance(20 * time.Second)
		}
		same := []string{mustIssue(t, s, tenantA, keyA).Value, mustIssue(t, s, tenantA, keyA).Value} // one instant
		mustIssue(t, s, tenantA, keyB)
		mustIssue(t, s, tenantB, keyA)
		got, err := s.Outstanding(ctx, tenantA, keyA)
		if want := []string{same[1], same[0], issued[2], issued[1]}; err != nil || !slices.Equal(got, want) {
			t.Fatalf("Outstanding = %v, %v; want %v (the first has expired)", got, err, want)
		}
	})
	t.Run("per-key bound", func(t *testing.T) {
		s, _ := newStore(t, NonceConfig{MaxPerKey: 2})
		first := mustIssue(t, s, tenantA, keyA)
		second := mustIssue(t, s, tenantA, keyA)
		third := mustIssue(t, s, tenantA, keyA)
		other := mustIssue(t, s, tenantA, keyB)
		wantBadNonce(t, s.Consume(ctx, tenantA, keyA, first.Value))
		consume(t, s, tenantA, keyA, second.Value)
		consume(t, s, tenantA, keyA, third.Value)
		consume(t, s, tenantA, keyB, other.Value)
	})
	t.Run("per-tenant bound", func(t *testing.T) {
		s, clock := newStore(t, NonceConfig{MaxPerTenant: 10})
		legit := mustIssue(t, s, tenantA, "legit")
		clock.Advance(time.Millisecond)
		var flood []Nonce
		for i := range 100 { // an unauthenticated flood of fresh keys
			flood = append(flood, mustIssue(t, s, tenantA, fmt.Sprintf("flood-%d", i)))
		}
		b := mustIssue(t, s, tenantB, keyA)
		wantBadNonce(t, s.Consume(ctx, tenantA, "legit", legit.Value))
		wantBadNonce(t, s.Consume(ctx, tenantA, "flood-89", flood[89].Value))
		consume(t, s, tenantA, "flood-90", flood[90].Value) // the newest ten are kept
		consume(t, s, tenantB, keyA, b.Value)               // another tenant is not touched
		fresh := mustIssue(t, s, tenantA, "legit")          // the flood does not lock anyone out
		consume(t, s, tenantA, "legit", fresh.Value)
	})
	t.Run("concurrent", func(t *testing.T) {
		s, _ := newStore(t, NonceConfig{MaxPerTenant: 50, MaxPerKey: 3})
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				tenant, key := fmt.Sprint("t", g%2), fmt.Sprint("k", g)
				for range 50 {
					n, err := s.Issue(ctx, tenant, key)
					if err != nil {
						t.Error(err)
						return
					}
					// Each goroutine's key holds at most 3 nonces and the tenant 50, so
					// its own fresh nonce is still there.
					if err := s.Consume(ctx, tenant, key, n.Value); err != nil {
						t.Errorf("Consume of a fresh nonce: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
	})
}

// TestRedisNoncesShared: a nonce issued through one gateway's store is consumed
// through another's, once, and the keys vanish when the nonces expire.
func TestRedisNoncesShared(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := context.Background()
	cfg := NonceConfig{TTL: time.Second}
	a := NewRedisNonceStore(redisClient(t, srv), "cg", cfg)
	b := NewRedisNonceStore(redisClient(t, srv), "cg", cfg)
	n := mustIssue(t, a, tenantA, keyA)
	if got, err := b.Outstanding(ctx, tenantA, keyA); err != nil || !slices.Equal(got, []string{n.Value}) {
		t.Fatalf("Outstanding through the other store = %v, %v", got, err)
	}
	if err := b.Consume(ctx, tenantA, keyA, n.Value); err != nil {
		t.Fatalf("Consume through the other store: %v", err)
	}
	wantBadNonce(t, a.Consume(ctx, tenantA, keyA, n.Value))

	mustIssue(t, a, tenantA, keyB)
	rdb := redisClient(t, srv)
	deadline := time.Now().Add(10 * time.Second)
	for {
		keys, err := rdb.Keys(ctx, "cg:n:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("keys left after the nonces expired: %v", keys)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRedisNoncesUnavailable: with Redis gone, issuing fails fast as overloaded
// (-32006, retry) rather than hanging or passing.
func TestRedisNoncesUnavailable(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := NewRedisNonceStore(redisClient(t, srv), "cg", NonceConfig{})
	srv.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := s.Issue(ctx, tenantA, keyA)
	wantKind(t, err, errs.Overloaded, "")
	if err := s.Consume(ctx, tenantA, keyA, "00"); !errs.Is(err, errs.Overloaded) {
		t.Fatalf("Consume with Redis down: %v", err)
	}
}

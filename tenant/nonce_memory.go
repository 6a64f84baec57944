package tenant

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// NonceConfig configures a nonce store: MemoryNonceStore or RedisNonceStore.
type NonceConfig struct {
	// TTL is how long a nonce can be consumed after it is issued. Zero means 300s.
	TTL time.Duration
	// MaxPerTenant bounds the nonces held for one tenant. When a tenant is full,
	// expired nonces are dropped first, then the tenant's oldest. Zero means 10000.
	MaxPerTenant int
	// MaxPerKey bounds the nonces held for one (tenant, pubkey); issuing one more
	// drops that key's oldest. Zero means 4.
	MaxPerKey int
	// Now is the clock. Zero means time.Now.
	Now func() time.Time
}

// withDefaults returns c with every zero (or negative) field set to its default.
func (c NonceConfig) withDefaults() NonceConfig {
	if c.TTL <= 0 {
		c.TTL = 300 * time.Second
	}
	if c.MaxPerTenant <= 0 {
		c.MaxPerTenant = 10000
	}
	if c.MaxPerKey <= 0 {
		c.MaxPerKey = 4
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// MemoryNonceStore is a NonceStore held in process memory, lost on restart. It is safe
// for concurrent use: each tenant has its own mutex, held only for map and list
// updates. Memory is bounded per tenant by MaxPerTenant nonces; the number of tenants
// is the caller's to bound (pass only tenants that exist). Expired nonces are removed
// as the tenant is used, without a background goroutine. The context arguments are
// not used.
type MemoryNonceStore struct {
	cfg     NonceConfig
	mu      sync.RWMutex // guards tenants, not their contents
	tenants map[string]*nonceTenant
	evicted atomic.Uint64
}

var _ NonceStore = (*MemoryNonceStore)(nil)

// NewMemoryNonceStore returns an empty store configured by cfg, defaults applied.
func NewMemoryNonceStore(cfg NonceConfig) *MemoryNonceStore {
	return &MemoryNonceStore{cfg: cfg.withDefaults(), tenants: make(map[string]*nonceTenant)}
}

// Issue creates a nonce for pubkey in tenant, evicting older ones if a bound is hit.
func (s *MemoryNonceStore) Issue(_ context.Context, tenant, pubkey string) (Nonce, error) {
	now := s.cfg.Now()
	e := &nonceEntry{value: newNonceValue(), pubkey: pubkey, expires: now.Add(s.cfg.TTL)}
	t := s.tenant(tenant, true)
	t.mu.Lock()
	t.dropExpired(now)
	n := t.add(e, s.cfg.MaxPerKey, s.cfg.MaxPerTenant)
	t.mu.Unlock()
	if n > 0 {
		s.evicted.Add(uint64(n))
	}
	return Nonce{Value: e.value, ExpiresAt: e.expires}, nil
}

// Consume removes the nonce value if it is unexpired and was issued for tenant and
// pubkey; otherwise it returns errs.InvalidCredentials.
func (s *MemoryNonceStore) Consume(_ context.Context, tenant, pubkey, value string) error {
	now := s.cfg.Now()
	t := s.tenant(tenant, false)
	if t == nil {
		return errBadNonce()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropExpired(now)
	e := t.byValue[value]
	if e == nil || e.pubkey != pubkey {
		return errBadNonce()
	}
	t.remove(e) // used or expired, it goes either way
	if !now.Before(e.expires) {
		return errBadNonce()
	}
	return nil
}

// Outstanding returns the unexpired nonces of pubkey in tenant, newest first.
func (s *MemoryNonceStore) Outstanding(_ context.Context, tenant, pubkey string) ([]string, error) {
	now := s.cfg.Now()
	t := s.tenant(tenant, false)
	if t == nil {
		return nil, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := t.byKey[pubkey]
	out := make([]string, 0, len(keys))
	for i := len(keys) - 1; i >= 0; i-- {
		if now.Before(keys[i].expires) {
			out = append(out, keys[i].value)
		}
	}
	return out, nil
}

// Len returns the number of unexpired nonces held for tenant. It is meant for tests.
func (s *MemoryNonceStore) Len(tenant string) int {
	t := s.tenant(tenant, false)
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropExpired(s.cfg.Now())
	return len(t.byValue)
}

// Evicted returns how many unexpired nonces were dropped because MaxPerKey or
// MaxPerTenant was reached.
func (s *MemoryNonceStore) Evicted() uint64 { return s.evicted.Load() }

// tenant returns the nonces of the named tenant, creating them if create is set;
// otherwise it may return nil.
func (s *MemoryNonceStore) tenant(name string, create bool) *nonceTenant {
	s.mu.RLock()
	t := s.tenants[name]
	s.mu.RUnlock()
	if t != nil || !create {
		return t
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t = s.tenants[name]; t == nil {
		t = newNonceTenant()
		s.tenants[name] = t
	}
	return t
}

// nonceEntry is one outstanding nonce, linked into its tenant's issue-order list.
type nonceEntry struct {
	value      string
	pubkey     string
	expires    time.Time
	prev, next *nonceEntry
}

// nonceTenant holds one tenant's nonces. Every method needs mu held.
//
// The list runs in issue order, oldest at head. With one TTL for all, that is also
// expiry order, so expired nonces are found at the head and removed in amortized O(1).
type nonceTenant struct {
	mu      sync.Mutex
	byValue map[string]*nonceEntry
	byKey   map[string][]*nonceEntry // per pubkey, oldest first, at most MaxPerKey
	head    *nonceEntry
	tail    *nonceEntry
}

func newNonceTenant() *nonceTenant {
	return &nonceTenant{byValue: make(map[string]*nonceEntry), byKey: make(map[string][]*nonceEntry)}
}

// add inserts e, first dropping the key's oldest nonce if the key holds maxKey and then
// the tenant's oldest while the tenant holds maxTenant. It returns how many it dropped.
func (t *nonceTenant) add(e *nonceEntry, maxKey, maxTenant int) (evicted int) {
	if keys := t.byKey[e.pubkey]; len(keys) >= maxKey {
		t.remove(keys[0])
		evicted++
	}
	for len(t.byValue) >= maxTenant {
		t.remove(t.head)
		evicted++
	}
	t.byValue[e.value] = e
	t.byKey[e.pubkey] = append(t.byKey[e.pubkey], e)
	e.prev = t.tail
	if t.tail != nil {
		t.tail.next = e
	} else {
		t.head = e
	}
	t.tail = e
	return evicted
}

// dropExpired removes the nonces at the head of the list that expired by now.
func (t *nonceTenant) dropExpired(now time.Time) {
	for t.head != nil && !now.Before(t.head.expires) {
		t.remove(t.head)
	}
}

// remove unlinks e from the list and both indexes.
func (t *nonceTenant) remove(e *nonceEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		t.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		t.tail = e.prev
	}
	e.prev, e.next = nil, nil
	delete(t.byValue, e.value)
	t.removeFromKey(e)
}

// removeFromKey deletes e from its pubkey's slice, and the slice once empty.
func (t *nonceTenant) removeFromKey(e *nonceEntry) {
	keys := t.byKey[e.pubkey]
	if i := slices.Index(keys, e); i >= 0 {
		keys = slices.Delete(keys, i, i+1) // clears the freed slot
	}
	if len(keys) == 0 {
		delete(t.byKey, e.pubkey)
		return
	}
	t.byKey[e.pubkey] = keys
}

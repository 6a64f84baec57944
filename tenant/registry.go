package tenant

import (
	"slices"
	"sync"

	"github.com/circlegate/circlegate/errs"
)

// Role is what a caller may do in a tenant or a context.
type Role string

// The roles. Owner is the tenant key itself or one of the tenant's admins; Member is a
// member of a context; Guest is any other authenticated key.
const (
	RoleOwner  Role = "owner"
	RoleMember Role = "member"
	RoleGuest  Role = "guest"
)

// Tenant is one circle: a secp256k1 public key and the keys that administer it.
type Tenant struct {
	// PubKey is the lowercase compressed hex of the tenant key.
	PubKey string
	// Name is a label for logs and listings; empty by default.
	Name string
	// Admins are normalized keys that act as owner of this tenant.
	Admins []string
}

// IsOwner reports whether key (normalized) is the tenant key or one of its admins.
func (t *Tenant) IsOwner(key string) bool {
	return key == t.PubKey || slices.Contains(t.Admins, key)
}

// Role returns the tenant-level role of an authenticated key: owner or guest.
func (t *Tenant) Role(key string) Role {
	if t.IsOwner(key) {
		return RoleOwner
	}
	return RoleGuest
}

// Registry is the set of tenants a node serves. Tenants may be added and removed at
// run time; lookups take a read lock only.
type Registry struct {
	mu      sync.RWMutex
	tenants map[string]*Tenant
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{tenants: make(map[string]*Tenant)}
}

// Add normalizes the tenant's key and admins and registers it, replacing any tenant
// with the same key.
func (r *Registry) Add(t Tenant) (*Tenant, error) {
	pk, err := NormalizePubKey(t.PubKey)
	if err != nil {
		return nil, err
	}
	admins := make([]string, 0, len(t.Admins))
	for _, a := range t.Admins {
		n, err := NormalizePubKey(a)
		if err != nil {
			return nil, errs.Param("admins", "%q is not a secp256k1 public key", a)
		}
		if !slices.Contains(admins, n) {
			admins = append(admins, n)
		}
	}
	nt := &Tenant{PubKey: pk, Name: t.Name, Admins: admins}
	r.mu.Lock()
	r.tenants[pk] = nt
	r.mu.Unlock()
	return nt, nil
}

// Remove unregisters the tenant with normalized key pk and reports whether it existed.
func (r *Registry) Remove(pk string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.tenants[pk]
	delete(r.tenants, pk)
	return ok
}

// Get returns the tenant with normalized key pk.
func (r *Registry) Get(pk string) (*Tenant, bool) {
	r.mu.RLock()
	t, ok := r.tenants[pk]
	r.mu.RUnlock()
	return t, ok
}

// Lookup accepts any spelling of a tenant key and returns the tenant, or a NotFound
// error when the key is malformed or not served here.
func (r *Registry) Lookup(key string) (*Tenant, error) {
	if t, ok := r.Get(key); ok {
		return t, nil // already the normalized spelling: no curve arithmetic
	}
	pk, err := NormalizePubKey(key)
	if err != nil {
		return nil, errs.E(errs.NotFound, "unknown tenant")
	}
	t, ok := r.Get(pk)
	if !ok {
		return nil, errs.E(errs.NotFound, "unknown tenant")
	}
	return t, nil
}

// List returns the tenants sorted by key.
func (r *Registry) List() []*Tenant {
	r.mu.RLock()
	out := make([]*Tenant, 0, len(r.tenants))
	for _, t := range r.tenants {
		out = append(out, t)
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b *Tenant) int {
		switch {
		case a.PubKey < b.PubKey:
			return -1
		case a.PubKey > b.PubKey:
			return 1
		}
		return 0
	})
	return out
}

// Len returns the number of tenants.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.tenants)
}

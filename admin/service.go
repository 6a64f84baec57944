package admin

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/execution"
	"github.com/circlegate/circlegate/store"
	"github.com/circlegate/circlegate/tenant"
	"github.com/circlegate/circlegate/webhooks"
)

// Store record kinds. Root keys and runtime tenants are the node's (tenant ""); client
// keys belong to their tenant, or to the node for root logins.
const (
	kindRootKey   = "admin.root-key"
	kindTenant    = "admin.tenant"
	kindClientKey = "admin.client-key"
)

// RoleRoot is the role add-client-key reports for a login to the node itself.
const RoleRoot tenant.Role = "root"

// Sessions is what the admin API needs of the live connections (the ws.Hub).
type Sessions interface {
	// CloseTenant closes every WebSocket session and SSE stream of tenant pk, which
	// is no longer served (4503 tenant_removed).
	CloseTenant(pk string) int
	// Principals returns the principals of tenant pk's authenticated connections.
	Principals(pk string) []*tenant.Principal
}

// Deps are the components the admin API works on; all are required.
type Deps struct {
	// NodeKey is the node's own key (tenant.LoadOrCreateNodeKey).
	NodeKey  *secp256k1.PrivateKey
	Auth     *tenant.Auth
	Registry *tenant.Registry
	Store    store.Store
	Exec     *execution.Service
	Webhooks *webhooks.Service
	Sessions Sessions
	// ConfigTenants are the normalized keys of the tenants of the config file: they
	// cannot be removed at run time.
	ConfigTenants []string
	Log           *slog.Logger
}

// RootKey is a root key of the node.
type RootKey struct {
	PubKey string `json:"pubkey"`
	// Source is "config" (config file or --root-key), "api" (POST /admin-api/root-key)
	// or "dev" (trusted on first use under --dev).
	Source  string     `json:"source"`
	AddedAt *time.Time `json:"addedAt,omitempty"`
	AddedBy string     `json:"addedBy,omitempty"`
}

// TenantInfo describes a tenant served here.
type TenantInfo struct {
	PubKey string   `json:"pubkey"`
	Name   string   `json:"name,omitempty"`
	Admins []string `json:"admins"`
	// Source is "config" (config file or -k) or "api" (added at run time).
	Source  string     `json:"source"`
	AddedAt *time.Time `json:"addedAt,omitempty"`
	AddedBy string     `json:"addedBy,omitempty"`
}

// Service is the node-level half of the admin API: the node key, root keys, runtime
// tenants, admin logins and client keys. Apps, contexts and webhooks are served by
// execution.Service and webhooks.Service, the same services JSON-RPC calls.
type Service struct {
	cfg      Config
	deps     Deps
	nodePK   string
	log      *slog.Logger
	now      func() time.Time
	fromConf map[string]bool // tenants of the config file

	mu      sync.Mutex // serializes changes of roots and tenants, and syncs
	roots   map[string]RootKey
	runtime map[string]TenantInfo // tenants added at run time
	node    atomic.Pointer[tenant.Tenant]

	keysMu sync.Mutex // serializes client key record updates
}

// NewService loads the root keys and runtime tenants from storage (adding the tenants
// to the registry) and makes revocations durable.
func NewService(ctx context.Context, cfg Config, d Deps) (*Service, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		cfg: cfg, deps: d, nodePK: tenant.PubKeyHex(d.NodeKey.PubKey()), log: log, now: time.Now,
		fromConf: make(map[string]bool), roots: make(map[string]RootKey), runtime: make(map[string]TenantInfo),
	}
	for _, pk := range d.ConfigTenants {
		s.fromConf[pk] = true
	}
	for _, k := range cfg.RootKeys {
		pk, _ := tenant.NormalizePubKey(k) // checked by Validate
		s.roots[pk] = RootKey{PubKey: pk, Source: "config"}
	}
	if err := d.Auth.UseRecords(ctx, d.Store); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reload(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// NodeKey returns the node's public key, compressed hex.
func (s *Service) NodeKey() string { return s.nodePK }

// Config returns the configuration with defaults applied.
func (s *Service) Config() Config { return s.cfg }

// Run reloads runtime tenants, root keys and revocations every sync_interval until
// ctx ends, so that what another gateway of a fleet changed applies here.
func (s *Service) Run(ctx context.Context) {
	if s.cfg.SyncInterval < 0 {
		return
	}
	t := time.NewTicker(s.cfg.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Sync(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("admin sync failed", "err", err)
			}
		}
	}
}

// Sync reloads runtime tenants, root keys and revocations from storage once. The
// revocations are read first and applied last: a tenant that another gateway removed
// (and then revoked its tokens) is removed here before the revocation applies, so its
// connections close as tenant_removed.
func (s *Service) Sync(ctx context.Context) error {
	apply, err := s.deps.Auth.ReadRevocations(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	err = s.reload(ctx)
	s.mu.Unlock()
	apply()
	return err
}

// reload reads root keys and runtime tenants; s.mu must be held.
func (s *Service) reload(ctx context.Context) error {
	roots, err := listAll[RootKey](ctx, s.deps.Store, "", kindRootKey)
	if err != nil {
		return err
	}
	for pk, r := range s.roots {
		if r.Source != "config" {
			delete(s.roots, pk)
		}
	}
	for _, r := range roots {
		if _, ok := s.roots[r.PubKey]; !ok {
			s.roots[r.PubKey] = r
		}
	}
	s.publishRoots()
	tenants, err := listAll[TenantInfo](ctx, s.deps.Store, "", kindTenant)
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(tenants))
	for _, ti := range tenants {
		seen[ti.PubKey] = true
		if s.fromConf[ti.PubKey] {
			continue // the config file's entry wins
		}
		if old, ok := s.runtime[ti.PubKey]; ok && slices.Equal(old.Admins, ti.Admins) && old.Name == ti.Name {
			continue
		}
		if _, err := s.deps.Registry.Add(tenant.Tenant{PubKey: ti.PubKey, Name: ti.Name, Admins: ti.Admins}); err != nil {
			s.log.Warn("skipping a stored tenant", "tenant", ti.PubKey, "err", err)
			continue
		}
		s.runtime[ti.PubKey] = ti
	}
	for pk := range s.runtime {
		if !seen[pk] { // removed through another gateway
			delete(s.runtime, pk)
			s.deps.Registry.Remove(pk)
			s.deps.Sessions.CloseTenant(pk)
		}
	}
	return nil
}

// publishRoots makes the node scope's tenant, whose owners are the root keys; s.mu
// must be held.
func (s *Service) publishRoots() {
	keys := make([]string, 0, len(s.roots))
	for pk := range s.roots {
		keys = append(keys, pk)
	}
	slices.Sort(keys)
	s.node.Store(&tenant.Tenant{PubKey: s.nodePK, Name: "node", Admins: keys})
}

// nodeTenant is the node scope: nonces and tokens of root logins are bound to it.
func (s *Service) nodeTenant() *tenant.Tenant { return s.node.Load() }

// IsRoot reports whether pk (normalized) is a root key now.
func (s *Service) IsRoot(pk string) bool { return slices.Contains(s.nodeTenant().Admins, pk) }

// RootKeys returns the root keys, sorted.
func (s *Service) RootKeys() []RootKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RootKey, 0, len(s.roots))
	for _, r := range s.roots {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b RootKey) int { return cmpString(a.PubKey, b.PubKey) })
	return out
}

// AddRootKey makes pubkey a root key, durably; by is the root that adds it. It
// reports false when the key was a root already (nothing changes).
func (s *Service) AddRootKey(ctx context.Context, by, pubkey string) (RootKey, bool, error) {
	pk, err := tenant.NormalizePubKey(pubkey)
	if err != nil {
		return RootKey{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.roots[pk]; ok {
		return r, false, nil
	}
	return s.addRootLocked(ctx, pk, "api", by)
}

func (s *Service) addRootLocked(ctx context.Context, pk, source, by string) (RootKey, bool, error) {
	now := s.now().UTC()
	r := RootKey{PubKey: pk, Source: source, AddedAt: &now, AddedBy: by}
	b, _ := json.Marshal(r)
	if err := s.deps.Store.PutRecord(ctx, "", kindRootKey, pk, b); err != nil {
		return RootKey{}, false, err
	}
	s.roots[pk] = r
	s.publishRoots()
	s.log.Info("root key added", "pubkey", pk, "source", source, "by", by)
	return r, true, nil
}

// Tenants returns the tenants served here, sorted by key.
func (s *Service) Tenants() []TenantInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []TenantInfo
	for _, t := range s.deps.Registry.List() {
		if ti, ok := s.runtime[t.PubKey]; ok {
			out = append(out, ti)
			continue
		}
		out = append(out, TenantInfo{PubKey: t.PubKey, Name: t.Name, Admins: nonNil(t.Admins), Source: "config"})
	}
	return out
}

// TenantSpec is a tenant to add at run time.
type TenantSpec struct {
	PubKey string   `json:"pubkey"`
	Name   string   `json:"name"`
	Admins []string `json:"admins"`
}

// maxTenantName bounds a tenant's name.
const maxTenantName = 64

// AddTenant serves a new tenant from now on, and after restarts; by is the root that
// adds it. A tenant served already is errs.Conflict.
func (s *Service) AddTenant(ctx context.Context, by string, spec TenantSpec) (TenantInfo, error) {
	pk, err := tenant.NormalizePubKey(spec.PubKey)
	if err != nil {
		return TenantInfo{}, err
	}
	if len(spec.Name) > maxTenantName || !printable(spec.Name) {
		return TenantInfo{}, errs.Param("name", "at most %d printable characters", maxTenantName)
	}
	admins := make([]string, 0, len(spec.Admins))
	for _, a := range spec.Admins {
		n, err := tenant.NormalizePubKey(a)
		if err != nil {
			return TenantInfo{}, errs.Param("admins", "%q is not a secp256k1 public key", a)
		}
		if !slices.Contains(admins, n) {
			admins = append(admins, n)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.deps.Registry.Get(pk); ok {
		return TenantInfo{}, errs.E(errs.Conflict, "tenant %s is served already", pk)
	}
	now := s.now().UTC()
	ti := TenantInfo{PubKey: pk, Name: spec.Name, Admins: admins, Source: "api", AddedAt: &now, AddedBy: by}
	b, _ := json.Marshal(ti)
	if err := s.deps.Store.PutRecord(ctx, "", kindTenant, pk, b); err != nil {
		return TenantInfo{}, err
	}
	if _, err := s.deps.Registry.Add(tenant.Tenant{PubKey: pk, Name: ti.Name, Admins: admins}); err != nil {
		return TenantInfo{}, err
	}
	s.runtime[pk] = ti
	s.log.Info("tenant added", "tenant", pk, "by", by)
	return ti, nil
}

// RemoveTenant stops serving a tenant added at run time: its connections are closed
// (4503 tenant_removed), its tokens revoked and its client keys forgotten. Its apps
// and contexts stay in storage; adding the tenant again serves them again. A tenant of
// the config file is errs.Conflict: remove it from the file.
func (s *Service) RemoveTenant(ctx context.Context, by, key string) (TenantInfo, error) {
	t, err := s.deps.Registry.Lookup(key)
	if err != nil {
		return TenantInfo{}, err
	}
	pk := t.PubKey
	s.mu.Lock()
	defer s.mu.Unlock()
	ti, ok := s.runtime[pk]
	if !ok {
		if s.fromConf[pk] {
			return TenantInfo{}, errs.E(errs.Conflict, "tenant %s comes from the config file: remove it there", pk)
		}
		return TenantInfo{}, errs.E(errs.NotFound, "unknown tenant")
	}
	if _, err := s.deps.Store.DeleteRecord(ctx, "", kindTenant, pk); err != nil {
		return TenantInfo{}, err
	}
	delete(s.runtime, pk)
	s.deps.Registry.Remove(pk)
	s.deps.Sessions.CloseTenant(pk)
	// Re-adding the tenant later must not revive the tokens issued until now.
	if err := s.deps.Auth.RevokeKeys(ctx, pk, tenant.All); err != nil {
		return TenantInfo{}, err
	}
	if err := s.forgetClientKeys(ctx, pk); err != nil {
		return TenantInfo{}, err
	}
	s.log.Info("tenant removed", "tenant", pk, "by", by)
	return ti, nil
}

// RevokeEverything revokes every token of the node, of every tenant and of the node
// itself, and forgets every client key. Root keys stay roots; they log in again.
func (s *Service) RevokeEverything(ctx context.Context, by string) (time.Time, error) {
	at := s.now().UTC()
	if err := s.deps.Auth.RevokeKeys(ctx, tenant.All, tenant.All); err != nil {
		return time.Time{}, err
	}
	scopes := []string{""}
	for _, t := range s.deps.Registry.List() {
		scopes = append(scopes, t.PubKey)
	}
	for _, sc := range scopes {
		if err := s.forgetClientKeys(ctx, sc); err != nil {
			return time.Time{}, err
		}
	}
	s.log.Info("every key revoked", "by", by)
	return at, nil
}

// listAll reads every record of (tenant, kind) as T, skipping records that do not
// decode.
func listAll[T any](ctx context.Context, st store.Store, tenantKey, kind string) ([]T, error) {
	const page = 500
	var out []T
	after := ""
	for {
		recs, err := st.ListRecords(ctx, tenantKey, kind, after, page, false)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			var v T
			if json.Unmarshal(r.Value, &v) == nil {
				out = append(out, v)
			}
		}
		if len(recs) < page {
			return out, nil
		}
		after = recs[len(recs)-1].ID
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

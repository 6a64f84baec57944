package admin

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/store"
	"github.com/circlegate/circlegate/tenant"
)

// Admin logins: request-challenge issues a nonce (tenant.Auth.FetchNonce) in a scope,
// a tenant or the node itself, and signs it with the node key; add-client-key checks
// the client's signature of it (tenant.Auth.Authenticate, as on the WebSocket) and
// returns a token of that scope. The key becomes a client key of the scope, recorded
// with its newest tokens, so that the owner can list and revoke them.

// maxTokensPerKey bounds the tokens a client key record lists (the newest).
const maxTokensPerKey = 8

// Challenge is the answer of request-challenge.
type Challenge struct {
	Nonce     string `json:"nonce"`
	ExpiresAt int64  `json:"expiresAt"`
	// NodeSignature is the node key's EIP-191 personal_sign signature of Nonce; GET
	// /admin-api/did shows the node key.
	NodeSignature string `json:"nodeSignature"`
}

// Login is the answer of add-client-key.
type Login struct {
	Token     string      `json:"token"`
	Role      tenant.Role `json:"role"`
	ExpiresAt int64       `json:"expiresAt"`
	// TokenID names the token in the key listings and for revocation.
	TokenID string `json:"tokenId"`
}

// TokenInfo describes a token without the token itself.
type TokenInfo struct {
	TokenID   string    `json:"tokenId"`
	PubKey    string    `json:"pubkey"`
	IssuedAt  time.Time `json:"issuedAt"`
	ExpiresAt time.Time `json:"expiresAt"`
	// Source is "admin" (issued by add-client-key) or "connection" (a token in use by
	// an open WebSocket session or SSE stream, issued by authenticate or
	// /auth/token).
	Source string `json:"source"`
	// Connections counts the open sessions and streams that use the token.
	Connections int `json:"connections"`
}

// ClientKey is a key that logged in through add-client-key.
type ClientKey struct {
	PubKey string `json:"pubkey"`
	// Role is the key's role where it is listed: owner or guest of the tenant, root of
	// the node, owner, member or reader of a context.
	Role       string    `json:"role"`
	AddedAt    time.Time `json:"addedAt"`
	LastSeenAt time.Time `json:"lastSeenAt"`
}

// clientKeyRecord is a stored client key with its newest tokens.
type clientKeyRecord struct {
	PubKey     string      `json:"pubkey"`
	AddedAt    time.Time   `json:"addedAt"`
	LastSeenAt time.Time   `json:"lastSeenAt"`
	Tokens     []TokenInfo `json:"tokens"`
}

// Keys is the answer of GET /admin-api/tenants/<pk>/keys.
type Keys struct {
	ClientKeys []ClientKey `json:"clientKeys"`
	// Tokens are the valid tokens of the client keys and of the open connections.
	Tokens []TokenInfo `json:"tokens"`
}

// scope returns the tenant a login is for: the node itself when key is empty.
func (s *Service) scope(key string) (*tenant.Tenant, error) {
	if key == "" {
		return s.nodeTenant(), nil
	}
	return s.deps.Registry.Lookup(key)
}

// recordScope is the store tenant that holds a scope's client keys.
func (s *Service) recordScope(t *tenant.Tenant) string {
	if t.PubKey == s.nodePK {
		return ""
	}
	return t.PubKey
}

// RequestChallenge issues a nonce for pubkey to sign, in tenant tenantKey or, when it
// is empty, in the node itself (root logins), signed by the node key.
func (s *Service) RequestChallenge(ctx context.Context, pubkey, tenantKey string) (Challenge, error) {
	t, err := s.scope(tenantKey)
	if err != nil {
		return Challenge{}, err
	}
	n, err := s.deps.Auth.FetchNonce(ctx, t, pubkey)
	if err != nil {
		return Challenge{}, err
	}
	return Challenge{
		Nonce: n.Value, ExpiresAt: n.ExpiresAt.Unix(),
		NodeSignature: tenant.SignPersonal(s.deps.NodeKey, []byte(n.Value)),
	}, nil
}

// AddClientKey checks pubkey's signature of a nonce from RequestChallenge in the same
// scope and returns a token. In the node scope only a root key gets one (or, under
// --dev while there is no root key, the first key, which becomes one).
func (s *Service) AddClientKey(ctx context.Context, pubkey, signature, nonce, tenantKey string) (Login, error) {
	t, err := s.scope(tenantKey)
	if err != nil {
		return Login{}, err
	}
	pr, token, err := s.deps.Auth.Authenticate(ctx, t, pubkey, signature, nonce)
	if err != nil {
		return Login{}, err
	}
	role := pr.Role()
	if t.PubKey == s.nodePK {
		if !s.IsRoot(pr.PubKey) && !s.trustOnFirstUse(ctx, pr.PubKey) {
			return Login{}, errs.E(errs.Forbidden, "%s is not a root key of this node", pr.PubKey)
		}
		role = RoleRoot
	}
	if err := s.recordLogin(ctx, t, pr, role != tenant.RoleGuest); err != nil {
		return Login{}, err
	}
	return Login{Token: token, Role: role, ExpiresAt: pr.ExpiresAt.Unix(), TokenID: pr.TokenID}, nil
}

// trustOnFirstUse makes pk a root key when Dev is set and the node has none.
func (s *Service) trustOnFirstUse(ctx context.Context, pk string) bool {
	if !s.cfg.Dev {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.roots) > 0 {
		return false
	}
	_, _, err := s.addRootLocked(ctx, pk, "dev", pk)
	if err != nil {
		s.log.Error("trust on first use", "err", err)
	}
	return err == nil
}

// recordLogin records pr's key as a client key of its scope with its new token. A
// new guest key past max_client_keys gets its token but is not recorded.
func (s *Service) recordLogin(ctx context.Context, t *tenant.Tenant, pr *tenant.Principal, privileged bool) error {
	scope := s.recordScope(t)
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	b, found, err := s.deps.Store.GetRecord(ctx, scope, kindClientKey, pr.PubKey)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	rec := clientKeyRecord{PubKey: pr.PubKey, AddedAt: now}
	if found {
		_ = json.Unmarshal(b, &rec)
	} else if !privileged {
		recs, err := s.deps.Store.ListRecords(ctx, scope, kindClientKey, "", s.cfg.MaxClientKeys, false)
		if err != nil {
			return err
		}
		if len(recs) >= s.cfg.MaxClientKeys {
			s.log.Debug("client key not recorded: max_client_keys reached", "tenant", t.PubKey, "pubkey", pr.PubKey)
			return nil
		}
	}
	rec.LastSeenAt = now
	rec.Tokens = s.liveTokens(t, rec.Tokens)
	rec.Tokens = append(rec.Tokens, TokenInfo{
		TokenID: pr.TokenID, PubKey: pr.PubKey, IssuedAt: pr.IssuedAt.UTC(), ExpiresAt: pr.ExpiresAt.UTC(), Source: "admin",
	})
	if n := len(rec.Tokens); n > maxTokensPerKey {
		rec.Tokens = rec.Tokens[n-maxTokensPerKey:]
	}
	b, _ = json.Marshal(rec)
	return s.deps.Store.PutRecord(ctx, scope, kindClientKey, pr.PubKey, b)
}

// liveTokens returns the tokens that are neither expired nor revoked.
func (s *Service) liveTokens(t *tenant.Tenant, toks []TokenInfo) []TokenInfo {
	return slices.DeleteFunc(slices.Clone(toks), func(ti TokenInfo) bool {
		pr := &tenant.Principal{Tenant: t, PubKey: ti.PubKey, TokenID: ti.TokenID, IssuedAt: ti.IssuedAt, ExpiresAt: ti.ExpiresAt}
		return s.deps.Auth.Check(pr) != nil
	})
}

// clientKeys returns the client key records of a scope.
func (s *Service) clientKeys(ctx context.Context, t *tenant.Tenant) ([]clientKeyRecord, error) {
	return listAll[clientKeyRecord](ctx, s.deps.Store, s.recordScope(t), kindClientKey)
}

// Keys lists a tenant's client keys and the valid tokens of those keys and of the
// tenant's open connections.
func (s *Service) Keys(ctx context.Context, t *tenant.Tenant) (Keys, error) {
	recs, err := s.clientKeys(ctx, t)
	if err != nil {
		return Keys{}, err
	}
	out := Keys{ClientKeys: []ClientKey{}, Tokens: []TokenInfo{}}
	index := make(map[string]int) // token id -> position in out.Tokens
	for _, r := range recs {
		out.ClientKeys = append(out.ClientKeys, ClientKey{PubKey: r.PubKey, Role: string(t.Role(r.PubKey)), AddedAt: r.AddedAt, LastSeenAt: r.LastSeenAt})
		for _, ti := range s.liveTokens(t, r.Tokens) {
			index[ti.TokenID] = len(out.Tokens)
			out.Tokens = append(out.Tokens, ti)
		}
	}
	for _, pr := range s.deps.Sessions.Principals(t.PubKey) {
		if s.deps.Auth.Check(pr) != nil {
			continue // about to be closed
		}
		if i, ok := index[pr.TokenID]; ok {
			out.Tokens[i].Connections++
			continue
		}
		index[pr.TokenID] = len(out.Tokens)
		out.Tokens = append(out.Tokens, TokenInfo{
			TokenID: pr.TokenID, PubKey: pr.PubKey, IssuedAt: pr.IssuedAt.UTC(), ExpiresAt: pr.ExpiresAt.UTC(),
			Source: "connection", Connections: 1,
		})
	}
	slices.SortStableFunc(out.Tokens, func(a, b TokenInfo) int { return cmpString(a.PubKey, b.PubKey) })
	return out, nil
}

// ContextClientKeys lists the client keys of a tenant that may read context meta,
// with their role in it: owner, member, or reader (of a public context).
func (s *Service) ContextClientKeys(ctx context.Context, t *tenant.Tenant, meta store.Context) ([]ClientKey, error) {
	recs, err := s.clientKeys(ctx, t)
	if err != nil {
		return nil, err
	}
	out := []ClientKey{}
	for _, r := range recs {
		role := ""
		switch {
		case t.IsOwner(r.PubKey):
			role = "owner"
		case slices.Contains(meta.Members, r.PubKey):
			role = "member"
		case meta.Public:
			role = "reader"
		default:
			continue
		}
		out = append(out, ClientKey{PubKey: r.PubKey, Role: role, AddedAt: r.AddedAt, LastSeenAt: r.LastSeenAt})
	}
	return out, nil
}

// RevokeKey refuses every token of pubkey in tenant t issued until now, closes its
// connections (4502 token_revoked) and forgets it as a client key.
func (s *Service) RevokeKey(ctx context.Context, t *tenant.Tenant, pubkey string) (time.Time, error) {
	pk, err := tenant.NormalizePubKey(pubkey)
	if err != nil {
		return time.Time{}, err
	}
	at := s.now().UTC()
	if err := s.deps.Auth.RevokeKeys(ctx, t.PubKey, pk); err != nil {
		return time.Time{}, err
	}
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	if _, err := s.deps.Store.DeleteRecord(ctx, s.recordScope(t), kindClientKey, pk); err != nil {
		return time.Time{}, err
	}
	s.log.Info("key revoked", "tenant", t.PubKey, "pubkey", pk)
	return at, nil
}

// RevokeToken refuses one token of tenant t and closes its connections (4502).
func (s *Service) RevokeToken(ctx context.Context, t *tenant.Tenant, tokenID string) error {
	expires := s.now().Add(s.deps.Auth.TokenTTL()) // the latest any token issued so far expires
	recs, err := s.clientKeys(ctx, t)
	if err != nil {
		return err
	}
	for _, r := range recs {
		for _, ti := range r.Tokens {
			if ti.TokenID == tokenID {
				expires = ti.ExpiresAt
			}
		}
	}
	if err := s.deps.Auth.RevokeToken(ctx, t.PubKey, tokenID, expires); err != nil {
		return err
	}
	s.log.Info("token revoked", "tenant", t.PubKey, "token_id", tokenID)
	return nil
}

// forgetClientKeys deletes every client key record of a scope ("" = the node).
func (s *Service) forgetClientKeys(ctx context.Context, scope string) error {
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	recs, err := listAll[clientKeyRecord](ctx, s.deps.Store, scope, kindClientKey)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if _, err := s.deps.Store.DeleteRecord(ctx, scope, kindClientKey, r.PubKey); err != nil {
			return err
		}
	}
	return nil
}

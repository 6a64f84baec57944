package tenant

import (
	"context"
	"time"

	"github.com/circlegate/circlegate/errs"
)

// AuthConfig configures the authentication service.
type AuthConfig struct {
	// TokenTTL is how long a bearer token stays valid. Zero means 24h.
	TokenTTL time.Duration `toml:"token_ttl"`
	// NonceTTL is how long a nonce from fetch_nonce may be used. Zero means 300s.
	NonceTTL time.Duration `toml:"nonce_ttl"`
	// MaxNoncesPerTenant bounds the outstanding nonces of one tenant; past it the
	// oldest are evicted. Zero means 10000.
	MaxNoncesPerTenant int `toml:"max_nonces_per_tenant"`
	// MaxNoncesPerKey bounds the outstanding nonces of one key in one tenant; past it
	// the key's oldest is dropped. Zero means 4.
	MaxNoncesPerKey int `toml:"max_nonces_per_key"`
}

// WithDefaults returns c with every zero field set to its default.
func (c AuthConfig) WithDefaults() AuthConfig {
	if c.TokenTTL == 0 {
		c.TokenTTL = 24 * time.Hour
	}
	if c.NonceTTL == 0 {
		c.NonceTTL = 300 * time.Second
	}
	if c.MaxNoncesPerTenant == 0 {
		c.MaxNoncesPerTenant = 10000
	}
	if c.MaxNoncesPerKey == 0 {
		c.MaxNoncesPerKey = 4
	}
	return c
}

// Validate reports the first invalid field, by its config key.
func (c AuthConfig) Validate() error {
	switch {
	case c.TokenTTL < 0:
		return errs.Param("token_ttl", "must not be negative")
	case c.NonceTTL < 0:
		return errs.Param("nonce_ttl", "must not be negative")
	case c.MaxNoncesPerTenant < 0:
		return errs.Param("max_nonces_per_tenant", "must not be negative")
	case c.MaxNoncesPerKey < 0:
		return errs.Param("max_nonces_per_key", "must not be negative")
	}
	return nil
}

// Principal is an authenticated caller of one tenant. It is immutable.
type Principal struct {
	Tenant    *Tenant
	PubKey    string // normalized compressed hex
	TokenID   string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// Role returns the caller's tenant-level role, read from the tenant's current admins.
func (p *Principal) Role() Role { return p.Tenant.Role(p.PubKey) }

// Expired reports whether the principal's token has expired at now.
func (p *Principal) Expired(now time.Time) bool { return !now.Before(p.ExpiresAt) }

// Auth issues nonces, checks signatures and issues and verifies tokens. Every transport
// (JSON-RPC, the HTTP auth forms, the admin API) calls it; none has its own copy.
type Auth struct {
	cfg     AuthConfig
	nonces  NonceStore
	tokens  *Tokens
	now     func() time.Time
	revoked revocations
}

// Nonces returns the configuration of a nonce store that follows c.
func (c AuthConfig) Nonces() NonceConfig {
	return NonceConfig{TTL: c.NonceTTL, MaxPerTenant: c.MaxNoncesPerTenant, MaxPerKey: c.MaxNoncesPerKey}
}

// NewAuth returns the authentication service. nonces nil means an in-memory store
// configured from cfg.
func NewAuth(cfg AuthConfig, tokens *Tokens, nonces NonceStore) (*Auth, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if nonces == nil {
		nonces = NewMemoryNonceStore(cfg.Nonces())
	}
	return &Auth{cfg: cfg, nonces: nonces, tokens: tokens, now: time.Now}, nil
}

// FetchNonce issues a nonce for pubkey (any spelling) in tenant t.
func (a *Auth) FetchNonce(ctx context.Context, t *Tenant, pubkey string) (Nonce, error) {
	key, err := NormalizePubKey(pubkey)
	if err != nil {
		return Nonce{}, err
	}
	return a.nonces.Issue(ctx, t.PubKey, key)
}

// Authenticate checks an EIP-191 signature of a nonce issued to pubkey in tenant t and,
// on success, consumes the nonce and returns the principal and a bearer token. With an
// empty nonce, the key's outstanding nonces are tried newest first.
func (a *Auth) Authenticate(ctx context.Context, t *Tenant, pubkey, signature, nonce string) (*Principal, string, error) {
	key, err := NormalizePubKey(pubkey)
	if err != nil {
		return nil, "", err
	}
	sig, err := ParseSignature(signature)
	if err != nil {
		return nil, "", err
	}
	candidates := []string{nonce}
	if nonce == "" {
		if candidates, err = a.nonces.Outstanding(ctx, t.PubKey, key); err != nil {
			return nil, "", err
		}
	}
	for _, n := range candidates {
		signer, err := RecoverPersonal([]byte(n), sig)
		if err != nil || PubKeyHex(signer) != key {
			continue
		}
		if err := a.nonces.Consume(ctx, t.PubKey, key, n); err != nil {
			return nil, "", err
		}
		token, claims := a.tokens.issue(t.PubKey, key, a.cfg.TokenTTL, a.minIssued(t.PubKey, key))
		return principal(t, claims), token, nil
	}
	return nil, "", errs.E(errs.InvalidCredentials, "signature does not match a nonce issued to this pubkey")
}

// VerifyToken checks a bearer token for tenant t and returns its principal. An
// expired or revoked token is errs.InvalidCredentials.
func (a *Auth) VerifyToken(_ context.Context, t *Tenant, token string) (*Principal, error) {
	c, err := a.tokens.Verify(token, t.PubKey)
	if err != nil {
		return nil, err
	}
	if a.revoked.list.Load().refuses(c.Tenant, c.PubKey, c.ID, c.IssuedAt.Unix()) {
		return nil, errTokenRevoked
	}
	return principal(t, c), nil
}

// VerifyAny checks a bearer token of any tenant, or of the node, and returns its
// claims; the caller finds the tenant the token is for (Claims.Tenant) and decides
// what it may do there. An expired or revoked token is errs.InvalidCredentials.
func (a *Auth) VerifyAny(_ context.Context, token string) (Claims, error) {
	c, err := a.tokens.VerifyAny(token)
	if err != nil {
		return Claims{}, err
	}
	if a.revoked.list.Load().refuses(c.Tenant, c.PubKey, c.ID, c.IssuedAt.Unix()) {
		return Claims{}, errTokenRevoked
	}
	return c, nil
}

// NewPrincipal returns the principal of verified claims in tenant t (the tenant, or the
// node, that c.Tenant names).
func NewPrincipal(t *Tenant, c Claims) *Principal { return principal(t, c) }

func principal(t *Tenant, c Claims) *Principal {
	return &Principal{Tenant: t, PubKey: c.PubKey, TokenID: c.ID, IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt}
}

// TokenTTL returns how long the tokens issued from now on stay valid.
func (a *Auth) TokenTTL() time.Duration { return a.cfg.TokenTTL }

package rpc

import (
	"context"
	"encoding/json"

	"github.com/circlegate/circlegate/tenant"
)

// NonceResult is the result of fetch_nonce.
type NonceResult struct {
	Nonce     string `json:"nonce"`
	ExpiresAt int64  `json:"expiresAt"`
}

// AuthResult is the result of authenticate.
type AuthResult struct {
	Authenticated bool        `json:"authenticated"`
	Token         string      `json:"token"`
	ExpiresAt     int64       `json:"expiresAt"`
	Role          tenant.Role `json:"role"`
}

// Identity is the result of whoami.
type Identity struct {
	PubKey string      `json:"pubkey"`
	Tenant string      `json:"tenant"`
	Role   tenant.Role `json:"role"`
}

type fetchNonceParams struct {
	PubKey string `json:"pubkey"`
}

type authenticateParams struct {
	PubKey    string `json:"pubkey"`
	Signature string `json:"signature"`
	Nonce     string `json:"nonce"`
}

type noParams struct{}

// RegisterAuth adds rpc.discover, fetch_nonce, authenticate and whoami, all inline
// (a signature check and a nonce store's round trip at most).
func RegisterAuth(s *Server, auth *tenant.Auth, openrpc []byte) {
	defer s.SetInline("rpc.discover", "fetch_nonce", "authenticate", "whoami")
	defer s.SetSelfTimed("rpc.discover", "whoami") // they wait for nothing
	doc := json.RawMessage(openrpc)
	Register(s, "rpc.discover", Public, func(context.Context, *Call, noParams) (json.RawMessage, error) {
		return doc, nil
	})
	Register(s, "fetch_nonce", Public, func(ctx context.Context, c *Call, p fetchNonceParams) (NonceResult, error) {
		n, err := auth.FetchNonce(ctx, c.Peer.Tenant, p.PubKey)
		if err != nil {
			return NonceResult{}, err
		}
		return NonceResult{Nonce: n.Value, ExpiresAt: n.ExpiresAt.Unix()}, nil
	})
	Register(s, "authenticate", Public, func(ctx context.Context, c *Call, p authenticateParams) (AuthResult, error) {
		pr, token, err := auth.Authenticate(ctx, c.Peer.Tenant, p.PubKey, p.Signature, p.Nonce)
		if err != nil {
			return AuthResult{}, err
		}
		c.Peer.SetPrincipal(pr)
		return AuthResult{Authenticated: true, Token: token, ExpiresAt: pr.ExpiresAt.Unix(), Role: pr.Role()}, nil
	})
	Register(s, "whoami", Authenticated, func(_ context.Context, c *Call, _ noParams) (Identity, error) {
		return Identity{PubKey: c.Principal.PubKey, Tenant: c.Peer.Tenant.PubKey, Role: c.Principal.Role()}, nil
	})
}

package admin

import (
	"context"
	"net/http"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/tenant"
)

// table is every route with its handler. It is also called on a nil *Handler, by
// Routes, which only reads the routes.
func (h *Handler) table() []route {
	const t = Prefix + "/tenants/{tenant}"
	return []route{
		{Route{http.MethodGet, Prefix + "/health", ScopePublic}, h.health},
		{Route{http.MethodPost, Prefix + "/request-challenge", ScopePublic}, h.requestChallenge},
		{Route{http.MethodPost, Prefix + "/add-client-key", ScopePublic}, h.addClientKey},
		{Route{http.MethodGet, Prefix + "/did", ScopePublic}, h.did},

		{Route{http.MethodPost, Prefix + "/root-key", ScopeRoot}, h.addRootKey},
		{Route{http.MethodGet, Prefix + "/tenants", ScopeRoot}, h.listTenants},
		{Route{http.MethodPost, Prefix + "/tenants", ScopeRoot}, h.addTenant},
		{Route{http.MethodDelete, t, ScopeRoot}, h.removeTenant},
		{Route{http.MethodDelete, Prefix + "/identity/keys", ScopeRoot}, h.revokeEverything},

		{Route{http.MethodGet, t + "/applications", ScopeOwner}, h.listApps},
		{Route{http.MethodPost, t + "/applications", ScopeOwner}, h.installApp},
		{Route{http.MethodGet, t + "/applications/{appId}", ScopeOwner}, h.getApp},
		{Route{http.MethodDelete, t + "/applications/{appId}", ScopeOwner}, h.uninstallApp},
		{Route{http.MethodGet, t + "/contexts", ScopeOwner}, h.listContexts},
		{Route{http.MethodPost, t + "/contexts", ScopeOwner}, h.createContext},
		{Route{http.MethodGet, t + "/contexts/{contextId}", ScopeOwner}, h.getContext},
		{Route{http.MethodDelete, t + "/contexts/{contextId}", ScopeOwner}, h.deleteContext},
		{Route{http.MethodGet, t + "/contexts/{contextId}/users", ScopeOwner}, h.contextUsers},
		{Route{http.MethodGet, t + "/contexts/{contextId}/client-keys", ScopeOwner}, h.contextClientKeys},
		{Route{http.MethodGet, t + "/contexts/{contextId}/storage", ScopeOwner}, h.contextStorage},
		{Route{http.MethodGet, t + "/webhooks", ScopeOwner}, h.webhookConfig},
		{Route{http.MethodGet, t + "/webhooks/secrets", ScopeOwner}, h.webhookSecrets},
		{Route{http.MethodGet, t + "/webhooks/routes", ScopeOwner}, h.webhookRoutes},
		{Route{http.MethodGet, t + "/webhooks/deliveries", ScopeOwner}, h.webhookDeliveries},
		{Route{http.MethodGet, t + "/keys", ScopeOwner}, h.listKeys},
		{Route{http.MethodDelete, t + "/keys/tokens/{tokenId}", ScopeOwner}, h.revokeToken},
		{Route{http.MethodDelete, t + "/keys/{pubkey}", ScopeOwner}, h.revokeKey},
	}
}

// Unprotected routes.

func (h *Handler) health(context.Context, *request) (any, error) {
	return map[string]string{"status": "ok"}, nil
}

func (h *Handler) requestChallenge(ctx context.Context, r *request) (any, error) {
	var p struct {
		PubKey string `json:"pubkey"`
		Tenant string `json:"tenant"`
	}
	if err := decodeBody(r, &p); err != nil {
		return nil, err
	}
	return h.svc.RequestChallenge(ctx, p.PubKey, p.Tenant)
}

func (h *Handler) addClientKey(ctx context.Context, r *request) (any, error) {
	var p struct {
		PubKey    string `json:"pubkey"`
		Signature string `json:"signature"`
		Nonce     string `json:"nonce"`
		Tenant    string `json:"tenant"`
	}
	if err := decodeBody(r, &p); err != nil {
		return nil, err
	}
	if p.Nonce == "" {
		return nil, errs.Param("nonce", "required: the nonce of request-challenge")
	}
	return h.svc.AddClientKey(ctx, p.PubKey, p.Signature, p.Nonce, p.Tenant)
}

// DID is the answer of GET /admin-api/did. RootKeys and Tenants are shown to a root
// only.
type DID struct {
	// NodeKey is the node's public key, which signs request-challenge nonces.
	NodeKey  string       `json:"nodeKey"`
	RootKeys []RootKey    `json:"rootKeys,omitempty"`
	Tenants  []TenantInfo `json:"tenants,omitempty"`
}

func (h *Handler) did(ctx context.Context, r *request) (any, error) {
	d := DID{NodeKey: h.svc.NodeKey()}
	if r.Header.Get("Authorization") == "" {
		return d, nil
	}
	c, err := h.authenticate(ctx, r.Request)
	if err != nil {
		return nil, err // a token that does not hold is said so, not ignored
	}
	if c.Root {
		d.RootKeys = h.svc.RootKeys()
		d.Tenants = nonNilInfos(h.svc.Tenants())
	}
	return d, nil
}

// Operator routes (root keys only).

func (h *Handler) addRootKey(ctx context.Context, r *request) (any, error) {
	var p struct {
		PubKey string `json:"pubkey"`
	}
	if err := decodeBody(r, &p); err != nil {
		return nil, err
	}
	rk, added, err := h.svc.AddRootKey(ctx, r.caller.Principal.PubKey, p.PubKey)
	if err != nil || !added {
		return rk, err
	}
	return created{rk}, nil
}

func (h *Handler) listTenants(context.Context, *request) (any, error) {
	return nonNilInfos(h.svc.Tenants()), nil
}

func (h *Handler) addTenant(ctx context.Context, r *request) (any, error) {
	var p TenantSpec
	if err := decodeBody(r, &p); err != nil {
		return nil, err
	}
	ti, err := h.svc.AddTenant(ctx, r.caller.Principal.PubKey, p)
	if err != nil {
		return nil, err
	}
	return created{ti}, nil
}

func (h *Handler) removeTenant(ctx context.Context, r *request) (any, error) {
	ti, err := h.svc.RemoveTenant(ctx, r.caller.Principal.PubKey, r.vars("tenant"))
	if err != nil {
		return nil, err
	}
	return map[string]any{"pubkey": ti.PubKey, "removed": true}, nil
}

func (h *Handler) revokeEverything(ctx context.Context, r *request) (any, error) {
	at, err := h.svc.RevokeEverything(ctx, r.caller.Principal.PubKey)
	if err != nil {
		return nil, err
	}
	return map[string]any{"revoked": true, "revokedAt": at.UTC().Format(time.RFC3339)}, nil
}

// Tenant routes (an owner of the tenant, or a root).

func (h *Handler) listKeys(ctx context.Context, r *request) (any, error) {
	return h.svc.Keys(ctx, r.tenant)
}

func (h *Handler) revokeKey(ctx context.Context, r *request) (any, error) {
	at, err := h.svc.RevokeKey(ctx, r.tenant, r.vars("pubkey"))
	if err != nil {
		return nil, err
	}
	pk, _ := tenant.NormalizePubKey(r.vars("pubkey"))
	return map[string]any{"pubkey": pk, "revoked": true, "revokedAt": at.UTC().Format(time.RFC3339)}, nil
}

func (h *Handler) revokeToken(ctx context.Context, r *request) (any, error) {
	id := r.vars("tokenId")
	if err := h.svc.RevokeToken(ctx, r.tenant, id); err != nil {
		return nil, err
	}
	return map[string]any{"tokenId": id, "revoked": true}, nil
}

func nonNilInfos(s []TenantInfo) []TenantInfo {
	if s == nil {
		return []TenantInfo{}
	}
	return s
}

package launcher

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/circlegate/circlegate/admin"
	"github.com/circlegate/circlegate/internal/testapps"
	"github.com/circlegate/circlegate/internal/testutil"
)

// TestAdminSecurity runs every route of the admin API (admin.Routes, so a new route
// is covered without editing this test) with every kind of caller that must be
// refused, and checks the status, the error code, and that the answer holds none of
// tenant A's data. Then it checks that nothing changed.
func TestAdminSecurity(t *testing.T) {
	root, member, guest := testutil.NewKey(t), testutil.NewKey(t), testutil.NewKey(t)
	e := startEnv(t, withRoot(root))
	owner := e.adminLogin(e.A, e.A.Pub).Token
	rt := e.adminLogin(root, "").Token

	// Tenant A's data, which no refused caller may see.
	mod := testapps.Build(t, "watcounter")
	var app adminApp
	e.installRaw(e.A.Pub, owner, "", mod, "").into(t, 200, &app)
	var cx adminContext
	e.api("POST", "/admin-api/tenants/"+e.A.Pub+"/contexts", owner, map[string]any{"appId": app.AppID, "members": []string{member.Pub}}).into(t, 201, &cx)
	c, _ := e.login(e.A.Pub, e.A)
	var secret struct {
		SecretID string `json:"secretId"`
	}
	if err := c.Call(ctxT(t), "webhook.secret.add", map[string]string{"provider": "idenfy", "secret": "admin-security-secret"}, &secret); err != nil {
		t.Fatal(err)
	}
	secrets := []string{app.AppID, cx.ContextID, secret.SecretID, tokenID(t, owner), "admin-security-secret"}

	revoked := e.adminLogin(e.A, e.A.Pub).Token
	e.api("DELETE", "/admin-api/tenants/"+e.A.Pub+"/keys/tokens/"+tokenID(t, revoked), owner, nil).into(t, 200, nil)
	var did didView
	e.api("GET", "/admin-api/did", "", nil).into(t, 200, &did)

	type caller struct {
		name  string
		token string
		// status for root and owner routes; 0 means allowed.
		root, owner int
	}
	callers := []caller{
		{"no token", "", 401, 401},
		{"malformed token", "cg1.bogus.token", 401, 401},
		{"expired owner token", e.expiredToken(e.A.Pub, e.A.Pub), 401, 401},
		{"expired root token", e.expiredToken(did.NodeKey, root.Pub), 401, 401},
		{"revoked owner token", revoked, 401, 401},
		{"owner of another tenant", e.adminLogin(e.B, e.B.Pub).Token, 403, 403},
		{"member of a context", e.adminLogin(member, e.A.Pub).Token, 403, 403},
		{"guest", e.adminLogin(guest, e.A.Pub).Token, 403, 403},
		{"owner", owner, 403, 0},
		{"a non-root's node token", nodeTokenOf(t, e, guest, did.NodeKey), 403, 403},
	}
	vars := strings.NewReplacer("{tenant}", e.A.Pub, "{appId}", app.AppID, "{contextId}", cx.ContextID,
		"{pubkey}", member.Pub, "{tokenId}", tokenID(t, owner))
	newKey := testutil.NewKey(t).Pub
	bodies := map[string]string{
		"POST " + admin.Prefix + "/request-challenge":             `{"pubkey":"` + guest.Pub + `"}`,
		"POST " + admin.Prefix + "/root-key":                      `{"pubkey":"` + newKey + `"}`,
		"POST " + admin.Prefix + "/tenants":                       `{"pubkey":"` + newKey + `"}`,
		"POST " + admin.Prefix + "/tenants/{tenant}/contexts":     `{"appId":"` + app.AppID + `"}`,
		"POST " + admin.Prefix + "/tenants/{tenant}/applications": string(notedWASM(mod)),
		"POST " + admin.Prefix + "/add-client-key":                "", // made per call
	}
	routes := admin.Routes()
	if len(routes) < 27 {
		t.Fatalf("admin.Routes() lists %d routes", len(routes))
	}
	for _, rt := range routes {
		key := rt.Method + " " + rt.Path
		for _, cl := range callers {
			want := 200
			switch {
			case rt.Scope == admin.ScopeRoot && cl.root != 0:
				want = cl.root
			case rt.Scope == admin.ScopeOwner && cl.owner != 0:
				want = cl.owner
			case rt.Scope == admin.ScopePublic && rt.Path == admin.Prefix+"/did" && cl.root == 401 && cl.token != "":
				want = 401 // a token that does not hold is said so
			case rt.Scope != admin.ScopePublic && rt.Method != http.MethodGet:
				continue // the allowed caller changing things is the business of other tests
			}
			t.Run(key+"/"+cl.name, func(t *testing.T) {
				body := bodies[key]
				if key == "POST "+admin.Prefix+"/add-client-key" {
					var ch challenge
					e.api("POST", "/admin-api/request-challenge", "", map[string]string{"pubkey": guest.Pub, "tenant": e.A.Pub}).into(t, 200, &ch)
					body = `{"pubkey":"` + guest.Pub + `","tenant":"` + e.A.Pub + `","nonce":"` + ch.Nonce + `","signature":"` + guest.Sign(ch.Nonce) + `"}`
				}
				req, _ := http.NewRequest(rt.Method, e.baseURL+vars.Replace(rt.Path), bytes.NewReader([]byte(body)))
				if cl.token != "" {
					req.Header.Set("Authorization", "Bearer "+cl.token)
				}
				r := e.apiDo(req)
				if r.Status != want {
					t.Fatalf("%d %s, want %d", r.Status, r.Raw, want)
				}
				wantCode := map[int]int{401: -32001, 403: -32003}[want]
				if want == 401 && cl.token != "" {
					wantCode = -32002
				}
				if want != 200 && (r.Error == nil || r.Error.Code != wantCode) {
					t.Fatalf("error %s, want code %d", r.Raw, wantCode)
				}
				if want == 200 && rt.Scope == admin.ScopeOwner {
					return // A's owner reads A's data
				}
				for _, s := range secrets {
					if bytes.Contains(r.Raw, []byte(s)) {
						t.Fatalf("the answer holds tenant A's %s: %s", s, r.Raw)
					}
				}
				if rt.Path == admin.Prefix+"/did" && (bytes.Contains(r.Raw, []byte(e.A.Pub)) || bytes.Contains(r.Raw, []byte("rootKeys"))) {
					t.Fatalf("did shows a non-root the tenants or root keys: %s", r.Raw)
				}
			})
		}
	}

	// Nothing any refused caller sent changed anything.
	var tenants []tenantView
	e.api("GET", "/admin-api/tenants", rt, nil).into(t, 200, &tenants)
	e.api("GET", "/admin-api/did", rt, nil).into(t, 200, &did)
	var apps []adminApp
	e.api("GET", "/admin-api/tenants/"+e.A.Pub+"/applications", owner, nil).into(t, 200, &apps)
	var contexts []adminContext
	e.api("GET", "/admin-api/tenants/"+e.A.Pub+"/contexts", owner, nil).into(t, 200, &contexts)
	var keys keysView
	e.api("GET", "/admin-api/tenants/"+e.A.Pub+"/keys", owner, nil).into(t, 200, &keys)
	memberListed := false
	for _, k := range keys.ClientKeys {
		memberListed = memberListed || k.PubKey == member.Pub
	}
	if len(tenants) != 2 || len(did.RootKeys) != 1 || len(apps) != 1 || len(contexts) != 1 || !memberListed {
		t.Fatalf("refused calls changed things: %d tenants, %d root keys, %d apps, %d contexts, member listed %v",
			len(tenants), len(did.RootKeys), len(apps), len(contexts), memberListed)
	}
}

// nodeTokenOf returns a node token of k, which is no root: the node issues none, so
// it is made with the node secret, as a token of a root that was removed from the
// config would be.
func nodeTokenOf(t *testing.T, e *env, k testutil.Key, nodeKey string) string {
	t.Helper()
	return e.validToken(nodeKey, k.Pub)
}

package launcher

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/circlegate/circlegate/internal/testutil"
	"github.com/circlegate/circlegate/tenant"
)

type didView struct {
	NodeKey  string `json:"nodeKey"`
	RootKeys []struct {
		PubKey string `json:"pubkey"`
		Source string `json:"source"`
	} `json:"rootKeys"`
	Tenants []tenantView `json:"tenants"`
}

type tenantView struct {
	PubKey string   `json:"pubkey"`
	Name   string   `json:"name"`
	Admins []string `json:"admins"`
	Source string   `json:"source"`
}

// whoamiHTTP calls whoami over HTTP JSON-RPC with token and returns the status and
// the role (empty on an error).
func (e *env) whoamiHTTP(tenantKey, token string) (int, string) {
	e.t.Helper()
	code, body := e.post("/"+tenantKey+"/jsonrpc", token, `{"jsonrpc":"2.0","id":1,"method":"whoami"}`)
	var r struct {
		Result struct{ Role string } `json:"result"`
	}
	_ = json.Unmarshal(body, &r)
	return code, r.Result.Role
}

func TestAdminLogin(t *testing.T) {
	root, stranger := testutil.NewKey(t), testutil.NewKey(t)
	e := startEnv(t, withRoot(root))

	var did didView
	e.api("GET", "/admin-api/did", "", nil).into(t, 200, &did)
	if _, err := tenant.NormalizePubKey(did.NodeKey); err != nil || len(did.RootKeys) != 0 || len(did.Tenants) != 0 {
		t.Fatalf("public did = %+v: want the node key only", did)
	}
	// The node signs its challenges: a client checks it talks to this node.
	var c challenge
	e.api("POST", "/admin-api/request-challenge", "", map[string]string{"pubkey": stranger.Pub}).into(t, 200, &c)
	if err := tenant.VerifyPersonal(did.NodeKey, []byte(c.Nonce), c.NodeSignature); err != nil {
		t.Fatalf("nodeSignature does not verify with the node key: %v", err)
	}
	if c.ExpiresAt < time.Now().Unix()+200 {
		t.Fatalf("challenge expires at %d", c.ExpiresAt)
	}
	// A key that is not a root gets no node login.
	e.api("POST", "/admin-api/add-client-key", "", map[string]string{
		"pubkey": stranger.Pub, "signature": stranger.Sign(c.Nonce), "nonce": c.Nonce,
	}).wantError(t, 403, -32003)

	rl := e.adminLogin(root, "")
	if rl.Role != "root" || rl.Token == "" {
		t.Fatalf("root login = %+v", rl)
	}
	e.api("GET", "/admin-api/did", rl.Token, nil).into(t, 200, &did)
	if len(did.RootKeys) != 1 || did.RootKeys[0].PubKey != root.Pub || did.RootKeys[0].Source != "config" || len(did.Tenants) != 2 {
		t.Fatalf("did for a root = %+v", did)
	}
	// A root's token is the node's: no tenant accepts it over JSON-RPC.
	if code, _ := e.whoamiHTTP(e.A.Pub, rl.Token); code != 401 {
		t.Errorf("a root token on tenant JSON-RPC: %d, want 401", code)
	}

	for _, tc := range []struct {
		name   string
		key    testutil.Key
		tenant string
		role   string
	}{
		{"tenant key", e.A, e.A.Pub, "owner"},
		{"tenant admin", e.AdminA, e.A.Pub, "owner"},
		{"stranger", stranger, e.A.Pub, "guest"},
		{"owner of A in B", e.A, e.B.Pub, "guest"},
		{"root in a tenant", root, e.A.Pub, "guest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := e.adminLogin(tc.key, tc.tenant)
			if l.Role != tc.role || l.ExpiresAt <= time.Now().Unix() {
				t.Fatalf("login = %+v, want role %s", l, tc.role)
			}
			// The token is the tenant's: it works on its JSON-RPC as well.
			if code, role := e.whoamiHTTP(tc.tenant, l.Token); code != 200 || role != tc.role {
				t.Fatalf("whoami with the admin token = %d %q", code, role)
			}
		})
	}
}

func TestAdminLoginRefusals(t *testing.T) {
	e := startEnv(t)
	k, other := testutil.NewKey(t), testutil.NewKey(t)
	fresh := func(scope string) string {
		var c challenge
		e.api("POST", "/admin-api/request-challenge", "", map[string]string{"pubkey": k.Pub, "tenant": scope}).into(t, 200, &c)
		return c.Nonce
	}
	used := fresh(e.A.Pub)
	e.adminLoginWith(k, e.A.Pub, used)
	unknown := testutil.NewKey(t).Pub
	challenges := []struct {
		name   string
		body   string
		status int
		code   int
	}{
		{"not JSON", `pubkey`, 400, -32602},
		{"array", `[]`, 400, -32602},
		{"unknown field", `{"pubkey":"` + k.Pub + `","x":1}`, 400, -32602},
		{"two objects", `{"pubkey":"` + k.Pub + `"} {}`, 400, -32602},
		{"bad pubkey", `{"pubkey":"02zz"}`, 400, -32602},
		{"wrong type", `{"pubkey":7}`, 400, -32602},
		{"unknown tenant", `{"pubkey":"` + k.Pub + `","tenant":"` + unknown + `"}`, 404, -32004},
	}
	for _, tc := range challenges {
		t.Run("challenge "+tc.name, func(t *testing.T) {
			e.api("POST", "/admin-api/request-challenge", "", tc.body).wantError(t, tc.status, tc.code)
		})
	}
	logins := []struct {
		name   string
		body   map[string]string
		status int
		code   int
	}{
		{"signed by another key", map[string]string{"pubkey": k.Pub, "nonce": "$N", "signature": "other", "tenant": e.A.Pub}, 401, -32002},
		{"nonce of another tenant", map[string]string{"pubkey": k.Pub, "nonce": "$N", "signature": "self", "tenant": e.B.Pub}, 401, -32002},
		{"nonce of a tenant used for the node", map[string]string{"pubkey": k.Pub, "nonce": "$N", "signature": "self"}, 401, -32002},
		{"used nonce", map[string]string{"pubkey": k.Pub, "nonce": used, "signature": "self", "tenant": e.A.Pub}, 401, -32002},
		{"no nonce", map[string]string{"pubkey": k.Pub, "signature": "self", "tenant": e.A.Pub}, 400, -32602},
		{"bad signature", map[string]string{"pubkey": k.Pub, "nonce": "$N", "signature": "0x1234", "tenant": e.A.Pub}, 400, -32602},
	}
	for _, tc := range logins {
		t.Run("login "+tc.name, func(t *testing.T) {
			n := fresh(e.A.Pub)
			body := map[string]string{}
			for key, v := range tc.body {
				body[key] = v
			}
			if body["nonce"] == "$N" {
				body["nonce"] = n
			}
			switch body["signature"] {
			case "self":
				body["signature"] = k.Sign(body["nonce"])
			case "other":
				body["signature"] = other.Sign(body["nonce"])
			}
			e.api("POST", "/admin-api/add-client-key", "", body).wantError(t, tc.status, tc.code)
			// A refused login consumes nothing: the fresh nonce still works.
			e.adminLoginWith(k, e.A.Pub, n)
		})
	}
}

// adminLoginWith completes a login with a nonce from request-challenge.
func (e *env) adminLoginWith(k testutil.Key, tenantKey, nonce string) login {
	e.t.Helper()
	var l login
	e.api("POST", "/admin-api/add-client-key", "", map[string]string{
		"pubkey": k.Pub, "signature": k.Sign(nonce), "nonce": nonce, "tenant": tenantKey,
	}).into(e.t, 200, &l)
	return l
}

func TestAdminRootKeys(t *testing.T) {
	dir := t.TempDir()
	root, second := testutil.NewKey(t), testutil.NewKey(t)
	e := startEnv(t, withRoot(root), func(c *Config) { c.Data = dir })
	rt := e.adminLogin(root, "").Token
	owner := e.adminLogin(e.A, e.A.Pub).Token
	e.api("POST", "/admin-api/root-key", owner, map[string]string{"pubkey": second.Pub}).wantError(t, 403, -32003)
	e.api("POST", "/admin-api/root-key", rt, map[string]string{"pubkey": "nope"}).wantError(t, 400, -32602)
	e.api("POST", "/admin-api/root-key", rt, `{"pubkey":"`+second.Pub+`","extra":true}`).wantError(t, 400, -32602)
	var did didView
	e.api("GET", "/admin-api/did", rt, nil).into(t, 200, &did)
	if len(did.RootKeys) != 1 {
		t.Fatalf("refused additions changed the root keys: %+v", did.RootKeys)
	}
	var rk struct {
		PubKey  string `json:"pubkey"`
		Source  string `json:"source"`
		AddedBy string `json:"addedBy"`
	}
	e.api("POST", "/admin-api/root-key", rt, map[string]string{"pubkey": second.Pub}).into(t, 201, &rk)
	if rk.PubKey != second.Pub || rk.Source != "api" || rk.AddedBy != root.Pub {
		t.Fatalf("root-key = %+v", rk)
	}
	e.api("POST", "/admin-api/root-key", rt, map[string]string{"pubkey": second.Pub}).into(t, 200, nil)
	if l := e.adminLogin(second, ""); l.Role != "root" {
		t.Fatalf("the new root's login = %+v", l)
	}
	// Kept across a restart, beside the configured one.
	shutdown(t, e.g)
	e2 := startEnv(t, withRoot(root), func(c *Config) { c.Data = dir })
	if l := e2.adminLogin(second, ""); l.Role != "root" {
		t.Fatalf("after a restart the added root's login = %+v", l)
	}
}

// TestAdminDevTrustOnFirstUse: without --dev no key becomes a root on its own; with
// it, the first one does while there is none, and only that one.
func TestAdminDevTrustOnFirstUse(t *testing.T) {
	first, second := testutil.NewKey(t), testutil.NewKey(t)
	strict := startEnv(t)
	var c challenge
	strict.api("POST", "/admin-api/request-challenge", "", map[string]string{"pubkey": first.Pub}).into(t, 200, &c)
	strict.api("POST", "/admin-api/add-client-key", "", map[string]string{
		"pubkey": first.Pub, "signature": first.Sign(c.Nonce), "nonce": c.Nonce,
	}).wantError(t, 403, -32003)

	dev := startEnv(t, func(c *Config) { c.Admin.Dev = true })
	if l := dev.adminLogin(first, ""); l.Role != "root" {
		t.Fatalf("first login under --dev = %+v, want root", l)
	}
	dev.api("POST", "/admin-api/request-challenge", "", map[string]string{"pubkey": second.Pub}).into(t, 200, &c)
	dev.api("POST", "/admin-api/add-client-key", "", map[string]string{
		"pubkey": second.Pub, "signature": second.Sign(c.Nonce), "nonce": c.Nonce,
	}).wantError(t, 403, -32003)
	var did didView
	dev.api("GET", "/admin-api/did", dev.adminLogin(first, "").Token, nil).into(t, 200, &did)
	if len(did.RootKeys) != 1 || did.RootKeys[0].PubKey != first.Pub || did.RootKeys[0].Source != "dev" {
		t.Fatalf("root keys under --dev = %+v", did.RootKeys)
	}
}

func TestAdminRuntimeTenants(t *testing.T) {
	dir := t.TempDir()
	root, nt := testutil.NewKey(t), testutil.NewKey(t)
	e := startEnv(t, withRoot(root), func(c *Config) { c.Data = dir })
	rt := e.adminLogin(root, "").Token
	list := func(e *env) []tenantView {
		var l []tenantView
		e.api("GET", "/admin-api/tenants", rt, nil).into(t, 200, &l)
		return l
	}
	for _, tc := range []struct {
		name   string
		body   string
		status int
	}{
		{"bad key", `{"pubkey":"02zz"}`, 400},
		{"bad admin", `{"pubkey":"` + nt.Pub + `","admins":["x"]}`, 400},
		{"control character in name", `{"pubkey":"` + nt.Pub + `","name":"a\nb"}`, 400},
		{"long name", `{"pubkey":"` + nt.Pub + `","name":"` + strings.Repeat("n", 65) + `"}`, 400},
		{"unknown field", `{"pubkey":"` + nt.Pub + `","owner":"x"}`, 400},
		{"served already", `{"pubkey":"` + e.A.Pub + `"}`, 409},
	} {
		r := e.api("POST", "/admin-api/tenants", rt, tc.body)
		if r.Status != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, r.Status, r.Raw, tc.status)
		}
	}
	if l := list(e); len(l) != 2 {
		t.Fatalf("refused additions changed the tenants: %+v", l)
	}
	if code, _ := e.get("/" + nt.Pub + "/auth/nonce?pubkey=" + nt.Pub); code != 404 {
		t.Fatalf("the new tenant is served before it is added: %d", code)
	}
	var added tenantView
	e.api("POST", "/admin-api/tenants", rt, map[string]any{"pubkey": "0x" + strings.ToUpper(nt.Pub), "name": "rt", "admins": []string{e.AdminA.Pub}}).into(t, 201, &added)
	if added.PubKey != nt.Pub || added.Name != "rt" || added.Source != "api" || !slices.Equal(added.Admins, []string{e.AdminA.Pub}) {
		t.Fatalf("added = %+v", added)
	}
	e.api("POST", "/admin-api/tenants", rt, map[string]string{"pubkey": nt.Pub}).wantError(t, 409, -32007)
	// Served at once, with its admins.
	if _, res := e.login(nt.Pub, e.AdminA); res.Role != "owner" {
		t.Fatalf("the admin of the added tenant is %q", res.Role)
	}
	if l := list(e); len(l) != 3 || !slices.ContainsFunc(l, func(v tenantView) bool { return v.PubKey == nt.Pub && v.Source == "api" }) {
		t.Fatalf("tenants = %+v", l)
	}
	e.api("DELETE", "/admin-api/tenants/"+e.A.Pub, rt, nil).wantError(t, 409, -32007)

	// Kept across a restart.
	shutdown(t, e.g)
	e = startEnv(t, withRoot(root), func(c *Config) { c.Data = dir })
	rt = e.adminLogin(root, "").Token
	ownerTok := e.adminLogin(nt, nt.Pub).Token

	// Removing it closes its sessions (4503) and SSE streams and refuses its tokens.
	conn, _, err := e.rawWS("/"+nt.Pub+"?token="+ownerTok, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream := e.openSSEAt(t, nt.Pub, ownerTok, "", nil)
	e.api("DELETE", "/admin-api/tenants/"+nt.Pub, rt, nil).into(t, 200, nil)
	if code := closeCode(t, conn); code != 4503 {
		t.Fatalf("session of a removed tenant closed with %d, want 4503", code)
	}
	stream.waitEnd(t)
	if code, _ := e.get("/" + nt.Pub + "/auth/nonce?pubkey=" + nt.Pub); code != 404 {
		t.Fatalf("a removed tenant is still served: %d", code)
	}
	e.api("DELETE", "/admin-api/tenants/"+nt.Pub, rt, nil).wantError(t, 404, -32004)
	if l := list(e); len(l) != 2 {
		t.Fatalf("tenants after removal = %+v", l)
	}
	// Added again, it does not take its old tokens back.
	e.api("POST", "/admin-api/tenants", rt, map[string]string{"pubkey": nt.Pub}).into(t, 201, nil)
	if code, _ := e.whoamiHTTP(nt.Pub, ownerTok); code != 401 {
		t.Fatalf("a token from before the removal: %d, want 401", code)
	}
	if code, role := e.whoamiHTTP(nt.Pub, e.adminLogin(nt, nt.Pub).Token); code != 200 || role != "owner" {
		t.Fatalf("a new login of the re-added tenant: %d %q", code, role)
	}
}

// TestAdminSync: what another gateway of a fleet writes to the shared records applies
// here at the next sync.
func TestAdminSync(t *testing.T) {
	root, nt := testutil.NewKey(t), testutil.NewKey(t)
	e := startEnv(t, withRoot(root), func(c *Config) { c.Admin.SyncInterval = -1 })
	ctx := ctxT(t)
	rec, _ := json.Marshal(map[string]any{"pubkey": nt.Pub, "name": "elsewhere", "admins": []string{}, "source": "api"})
	if err := e.g.Store.PutRecord(ctx, "", "admin.tenant", nt.Pub, rec); err != nil {
		t.Fatal(err)
	}
	if err := e.g.Admin.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	c, res := e.login(nt.Pub, nt)
	if res.Role != "owner" {
		t.Fatalf("a tenant added elsewhere: role %q", res.Role)
	}
	if _, err := e.g.Store.DeleteRecord(ctx, "", "admin.tenant", nt.Pub); err != nil {
		t.Fatal(err)
	}
	if err := e.g.Admin.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	closedWith(t, c, 4503)
}

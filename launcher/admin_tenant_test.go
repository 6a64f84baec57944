package launcher

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/circlegate/circlegate/client"
	"github.com/circlegate/circlegate/internal/testapps"
	"github.com/circlegate/circlegate/internal/testutil"
	"github.com/circlegate/circlegate/tenant"
)

// notedWASM is mod with an empty custom section appended: another app that behaves
// the same.
func notedWASM(mod []byte) []byte {
	return append(slices.Clone(mod), 0x00, 0x06, 0x04, 'n', 'o', 't', 'e', '!')
}

func appID(wasm []byte) string {
	s := sha256.Sum256(wasm)
	return hex.EncodeToString(s[:])
}

type adminApp struct {
	AppID   string `json:"appId"`
	Name    string `json:"name"`
	Version string `json:"version"`
	Size    int    `json:"size"`
}

// installRaw posts wasm as the raw body of an install.
func (e *env) installRaw(tenantKey, token, query string, wasm []byte, contentType string) apiReply {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.baseURL+"/admin-api/tenants/"+tenantKey+"/applications"+query, bytes.NewReader(wasm))
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return e.apiDo(req)
}

// apiDo sends a prepared admin request.
func (e *env) apiDo(req *http.Request) apiReply {
	e.t.Helper()
	status, raw := e.do(req)
	r := apiReply{}
	if err := json.Unmarshal(raw, &r); err != nil {
		e.t.Fatalf("%s %s: %d, not JSON: %s", req.Method, req.URL.Path, status, raw)
	}
	r.Status, r.Raw = status, raw
	return r
}

func multipartBody(t *testing.T, parts map[string][]byte) (*bytes.Buffer, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range parts {
			if !yield(k) {
				return
			}
		}
	}) {
		var fw interface{ Write([]byte) (int, error) }
		var err error
		if name == "wasm" {
			fw, err = w.CreateFormFile(name, "app.wasm")
		} else {
			fw, err = w.CreateFormField(name)
		}
		if err != nil {
			t.Fatal(err)
		}
		_, _ = fw.Write(parts[name])
	}
	_ = w.Close()
	return &b, w.FormDataContentType()
}

func TestAdminApplications(t *testing.T) {
	e := startEnv(t, func(c *Config) { c.Execution.MaxAppBytes = 64 << 10 })
	owner := e.adminLogin(e.A, e.A.Pub).Token
	base := "/admin-api/tenants/" + e.A.Pub + "/applications"
	mod := testapps.Build(t, "watcounter")

	var apps []adminApp
	e.api("GET", base, owner, nil).into(t, 200, &apps)
	if len(apps) != 0 {
		t.Fatalf("apps of a new tenant = %+v", apps)
	}
	for _, tc := range []struct {
		name, ctype string
		body        []byte
		status      int
	}{
		{"empty", "application/wasm", nil, 400},
		{"not wasm", "application/wasm", []byte("hello"), 400},
		{"json", "application/json", []byte(`{"wasm":"AGFzbQ=="}`), 400},
		{"too large", "application/octet-stream", make([]byte, 64<<10+1), 413},
	} {
		if r := e.installRaw(e.A.Pub, owner, "", tc.body, tc.ctype); r.Status != tc.status || r.Error == nil {
			t.Errorf("install %s: %d %s, want %d", tc.name, r.Status, r.Raw, tc.status)
		}
	}
	mpBad, ctBad := multipartBody(t, map[string][]byte{"name": []byte("x")})
	mpUnknown, ctUnknown := multipartBody(t, map[string][]byte{"wasm": mod, "other": []byte("x")})
	for _, tc := range []struct {
		name  string
		body  *bytes.Buffer
		ctype string
	}{{"no wasm part", mpBad, ctBad}, {"unknown part", mpUnknown, ctUnknown}, {"no boundary", bytes.NewBufferString("x"), "multipart/form-data"}} {
		req, _ := http.NewRequest("POST", e.baseURL+base, tc.body)
		req.Header.Set("Authorization", "Bearer "+owner)
		req.Header.Set("Content-Type", tc.ctype)
		if r := e.apiDo(req); r.Status != 400 {
			t.Errorf("multipart %s: %d %s, want 400", tc.name, r.Status, r.Raw)
		}
	}
	e.api("GET", base, owner, nil).into(t, 200, &apps)
	if len(apps) != 0 {
		t.Fatalf("refused installs installed %+v", apps)
	}

	var raw, mp adminApp
	e.installRaw(e.A.Pub, owner, "?name=counter&version=1", mod, "application/wasm").into(t, 200, &raw)
	if raw.AppID != appID(mod) || raw.Name != "counter" || raw.Version != "1" || raw.Size != len(mod) {
		t.Fatalf("raw install = %+v", raw)
	}
	noted := notedWASM(mod)
	body, ctype := multipartBody(t, map[string][]byte{"wasm": noted, "name": []byte("noted"), "version": []byte("2")})
	req, _ := http.NewRequest("POST", e.baseURL+base, body)
	req.Header.Set("Authorization", "Bearer "+owner)
	req.Header.Set("Content-Type", ctype)
	e.apiDo(req).into(t, 200, &mp)
	if mp.AppID != appID(noted) || mp.Name != "noted" || mp.Version != "2" {
		t.Fatalf("multipart install = %+v", mp)
	}
	e.api("GET", base, owner, nil).into(t, 200, &apps)
	if len(apps) != 2 {
		t.Fatalf("apps = %+v", apps)
	}
	var got adminApp
	e.api("GET", base+"/"+raw.AppID, owner, nil).into(t, 200, &got)
	if got != raw {
		t.Fatalf("get = %+v, want %+v", got, raw)
	}
	e.api("GET", base+"/"+strings.Repeat("0", 64), owner, nil).wantError(t, 404, -32004)
	// The same app, seen over JSON-RPC: one implementation.
	c, _ := e.login(e.A.Pub, e.A)
	var viaRPC struct {
		Apps []adminApp `json:"apps"`
	}
	if err := c.Call(ctxT(t), "app.list", nil, &viaRPC); err != nil || len(viaRPC.Apps) != 2 {
		t.Fatalf("app.list = %+v, %v", viaRPC, err)
	}
	e.api("DELETE", base+"/"+mp.AppID, owner, nil).into(t, 200, nil)
	e.api("GET", base+"/"+mp.AppID, owner, nil).wantError(t, 404, -32004)
	e.api("DELETE", base+"/"+mp.AppID, owner, nil).wantError(t, 404, -32004)
}

type adminContext struct {
	ContextID string   `json:"contextId"`
	AppID     string   `json:"appId"`
	Members   []string `json:"members"`
	Public    bool     `json:"public"`
	Seq       uint64   `json:"seq"`
	RootHash  string   `json:"rootHash"`
}

func TestAdminContexts(t *testing.T) {
	root := testutil.NewKey(t)
	e := startEnv(t, withRoot(root))
	member, outsider := testutil.NewKey(t), testutil.NewKey(t)
	owner := e.adminLogin(e.A, e.A.Pub).Token
	rt := e.adminLogin(root, "").Token
	mod := testapps.Build(t, "watcounter")
	var app adminApp
	e.installRaw(e.A.Pub, owner, "", mod, "").into(t, 200, &app)
	base := "/admin-api/tenants/" + e.A.Pub + "/contexts"

	for _, tc := range []struct {
		name   string
		body   string
		status int
	}{
		{"no app", `{}`, 400},
		{"unknown app", `{"appId":"` + strings.Repeat("a", 64) + `"}`, 404},
		{"bad member", `{"appId":"` + app.AppID + `","members":["x"]}`, 400},
		{"unknown field", `{"appId":"` + app.AppID + `","owner":"x"}`, 400},
		{"members not a list", `{"appId":"` + app.AppID + `","members":"x"}`, 400},
	} {
		if r := e.api("POST", base, owner, tc.body); r.Status != tc.status {
			t.Errorf("create %s: %d %s, want %d", tc.name, r.Status, r.Raw, tc.status)
		}
	}
	var list []adminContext
	e.api("GET", base, owner, nil).into(t, 200, &list)
	if len(list) != 0 {
		t.Fatalf("refused creations created %+v", list)
	}
	var cx adminContext
	e.api("POST", base, owner, map[string]any{"appId": app.AppID, "members": []string{member.Pub}}).into(t, 201, &cx)
	if cx.AppID != app.AppID || !slices.Equal(cx.Members, []string{member.Pub}) || cx.Public {
		t.Fatalf("created = %+v", cx)
	}
	// A root acts as owner too.
	var byRoot adminContext
	e.api("POST", base, rt, map[string]any{"appId": app.AppID, "public": true}).into(t, 201, &byRoot)
	e.api("GET", base, owner, nil).into(t, 200, &list)
	if len(list) != 2 {
		t.Fatalf("contexts = %+v", list)
	}

	// The member mutates over JSON-RPC; the admin API sees the result.
	mc, _ := e.login(e.A.Pub, member)
	if err := mc.Call(ctxT(t), "mutate", map[string]any{"contextId": cx.ContextID, "method": "increment"}, nil); err != nil {
		t.Fatal(err)
	}
	var got adminContext
	e.api("GET", base+"/"+cx.ContextID, owner, nil).into(t, 200, &got)
	if got.Seq != 1 || got.RootHash == cx.RootHash {
		t.Fatalf("context after a mutation = %+v", got)
	}
	var st struct {
		Keys  int64  `json:"keys"`
		Bytes int64  `json:"bytes"`
		Seq   uint64 `json:"seq"`
	}
	e.api("GET", base+"/"+cx.ContextID+"/storage", owner, nil).into(t, 200, &st)
	if st.Keys != 1 || st.Bytes != int64(len("count")+8) || st.Seq != 1 {
		t.Fatalf("storage = %+v", st)
	}

	var users struct {
		ContextID string `json:"contextId"`
		CreatedBy string `json:"createdBy"`
		Users     []struct {
			PubKey string `json:"pubkey"`
			Role   string `json:"role"`
		} `json:"users"`
	}
	e.api("GET", base+"/"+cx.ContextID+"/users", owner, nil).into(t, 200, &users)
	roles := map[string]string{}
	for _, u := range users.Users {
		roles[u.PubKey] = u.Role
	}
	if users.CreatedBy != e.A.Pub || len(roles) != 3 || roles[e.A.Pub] != "owner" || roles[e.AdminA.Pub] != "owner" || roles[member.Pub] != "member" {
		t.Fatalf("users = %+v", users)
	}

	// Client keys: those that logged in through the admin API and may read the context.
	e.adminLogin(member, e.A.Pub)
	e.adminLogin(outsider, e.A.Pub)
	keysOf := func(id string) map[string]string {
		var ks []struct {
			PubKey string `json:"pubkey"`
			Role   string `json:"role"`
		}
		e.api("GET", base+"/"+id+"/client-keys", owner, nil).into(t, 200, &ks)
		m := map[string]string{}
		for _, k := range ks {
			m[k.PubKey] = k.Role
		}
		return m
	}
	if m := keysOf(cx.ContextID); len(m) != 2 || m[e.A.Pub] != "owner" || m[member.Pub] != "member" {
		t.Fatalf("client keys of the private context = %+v", m)
	}
	if m := keysOf(byRoot.ContextID); len(m) != 3 || m[outsider.Pub] != "reader" {
		t.Fatalf("client keys of the public context = %+v", m)
	}

	e.api("DELETE", "/admin-api/tenants/"+e.A.Pub+"/applications/"+app.AppID, owner, nil).wantError(t, 409, -32007)
	e.api("DELETE", base+"/"+cx.ContextID, owner, nil).into(t, 200, nil)
	for _, sub := range []string{"", "/users", "/client-keys", "/storage"} {
		e.api("GET", base+"/"+cx.ContextID+sub, owner, nil).wantError(t, 404, -32004)
	}
	e.api("DELETE", base+"/"+cx.ContextID, owner, nil).wantError(t, 404, -32004)
	// A context of tenant A is not found through tenant B, even by a root.
	e.api("GET", "/admin-api/tenants/"+e.B.Pub+"/contexts/"+byRoot.ContextID, rt, nil).wantError(t, 404, -32004)
}

func TestAdminWebhooks(t *testing.T) {
	e := startEnv(t)
	owner := e.adminLogin(e.A, e.A.Pub).Token
	base := "/admin-api/tenants/" + e.A.Pub + "/webhooks"
	c, _ := e.login(e.A.Pub, e.A)
	mod := testapps.Build(t, "watcounter")
	var app adminApp
	e.installRaw(e.A.Pub, owner, "", mod, "").into(t, 200, &app)
	var cx adminContext
	e.api("POST", "/admin-api/tenants/"+e.A.Pub+"/contexts", owner, map[string]any{"appId": app.AppID}).into(t, 201, &cx)
	const secret = "whsec_admin_test_secret_value_1234567890"
	var added struct {
		SecretID string `json:"secretId"`
	}
	if err := c.Call(ctxT(t), "webhook.secret.add", map[string]string{"provider": "stripe", "secret": secret}, &added); err != nil {
		t.Fatal(err)
	}
	if err := c.Call(ctxT(t), "webhook.route.set", map[string]string{"provider": "stripe", "eventType": "*", "contextId": cx.ContextID, "method": "increment"}, nil); err != nil {
		t.Fatal(err)
	}
	r := e.api("GET", base+"/secrets", owner, nil)
	var secrets []struct {
		SecretID string `json:"secretId"`
		Provider string `json:"provider"`
	}
	r.into(t, 200, &secrets)
	if len(secrets) != 1 || secrets[0].SecretID != added.SecretID || secrets[0].Provider != "stripe" || bytes.Contains(r.Raw, []byte(secret)) {
		t.Fatalf("secrets = %s", r.Raw)
	}
	var routes []struct {
		ContextID string `json:"contextId"`
		Method    string `json:"method"`
	}
	e.api("GET", base+"/routes", owner, nil).into(t, 200, &routes)
	if len(routes) != 1 || routes[0].ContextID != cx.ContextID || routes[0].Method != "increment" {
		t.Fatalf("routes = %+v", routes)
	}
	r = e.api("GET", base, owner, nil)
	var both struct {
		Secrets []struct {
			SecretID string `json:"secretId"`
		} `json:"secrets"`
		Routes []struct {
			ContextID string `json:"contextId"`
		} `json:"routes"`
	}
	r.into(t, 200, &both)
	if len(both.Secrets) != 1 || both.Secrets[0].SecretID != added.SecretID || len(both.Routes) != 1 || bytes.Contains(r.Raw, []byte(secret)) {
		t.Fatalf("webhooks = %s", r.Raw)
	}
	for i := range 3 { // refused deliveries are logged too
		if code, _, _ := e.hook("/webhooks/stripe/"+e.A.Pub, http.Header{"Stripe-Signature": {"t=1,v1=00"}}, []byte(`{"id":"evt_`+string(rune('a'+i))+`"}`)); code != 400 {
			t.Fatalf("unsigned delivery: %d", code)
		}
	}
	var page struct {
		Deliveries []struct {
			Outcome string `json:"outcome"`
			Status  int    `json:"status"`
		} `json:"deliveries"`
		Next string `json:"next"`
	}
	e.api("GET", base+"/deliveries?limit=2", owner, nil).into(t, 200, &page)
	if len(page.Deliveries) != 2 || page.Next == "" || page.Deliveries[0].Status != 400 {
		t.Fatalf("first page = %+v", page)
	}
	before := page.Next
	page.Next = ""
	e.api("GET", base+"/deliveries?limit=2&before="+before, owner, nil).into(t, 200, &page)
	if len(page.Deliveries) != 1 || page.Next != "" {
		t.Fatalf("second page = %+v", page)
	}
	e.api("GET", base+"/deliveries?limit=x", owner, nil).wantError(t, 400, -32602)
	e.api("GET", base+"/deliveries?limit=501", owner, nil).wantError(t, 400, -32602)
}

// waitEnd waits for the server to end an SSE stream.
func (s *sseStream) waitEnd(t *testing.T) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := s.r.ReadString('\n'); err != nil {
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.resp.Body.Close()
		t.Fatal("the SSE stream is still open")
	}
}

type keysView struct {
	ClientKeys []struct {
		PubKey string `json:"pubkey"`
		Role   string `json:"role"`
	} `json:"clientKeys"`
	Tokens []struct {
		TokenID     string `json:"tokenId"`
		PubKey      string `json:"pubkey"`
		Source      string `json:"source"`
		Connections int    `json:"connections"`
	} `json:"tokens"`
}

// tokenID returns the id inside a cg1 token.
func tokenID(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	var p struct {
		I string `json:"i"`
	}
	b, err := base64RawURL(parts[1])
	if err != nil || json.Unmarshal(b, &p) != nil {
		t.Fatalf("token %q has no id", token)
	}
	return p.I
}

func TestAdminKeysAndRevocation(t *testing.T) {
	root := testutil.NewKey(t)
	e := startEnv(t, withRoot(root))
	guest := testutil.NewKey(t)
	owner := e.adminLogin(e.A, e.A.Pub).Token
	base := "/admin-api/tenants/" + e.A.Pub + "/keys"
	gl := e.adminLogin(guest, e.A.Pub)

	// The guest holds a WebSocket session and an SSE stream with its admin token, and a
	// second session authenticated on the socket (another token).
	conn, _, err := e.rawWS("/"+e.A.Pub+"?token="+gl.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream := e.openSSE(t, gl.Token, "", nil)
	wsc, wsAuth := e.login(e.A.Pub, guest)
	// A session of tenant B stays untouched by all of A's revocations.
	bc, _ := e.login(e.B.Pub, guest)

	var keys keysView
	e.api("GET", base, owner, nil).into(t, 200, &keys)
	byID := map[string]int{}
	for i, tk := range keys.Tokens {
		byID[tk.TokenID] = i
	}
	if len(keys.ClientKeys) != 2 || len(keys.Tokens) != 3 {
		t.Fatalf("keys = %+v", keys)
	}
	if i, ok := byID[tokenID(t, gl.Token)]; !ok || keys.Tokens[i].Source != "admin" || keys.Tokens[i].Connections != 2 {
		t.Fatalf("the guest's admin token is not listed with 2 connections: %+v", keys)
	}
	if i, ok := byID[tokenID(t, wsAuth.Token)]; !ok || keys.Tokens[i].Source != "connection" || keys.Tokens[i].Connections != 1 {
		t.Fatalf("the socket's token is not listed: %+v", keys)
	}

	// Bad input revokes nothing.
	e.api("DELETE", base+"/nope", owner, nil).wantError(t, 400, -32602)
	e.api("DELETE", base+"/tokens/XYZ", owner, nil).wantError(t, 400, -32602)
	if code, _ := e.whoamiHTTP(e.A.Pub, gl.Token); code != 200 {
		t.Fatalf("a refused revocation revoked: %d", code)
	}

	// Revoking the key refuses all its tokens everywhere at once.
	e.api("DELETE", base+"/"+guest.Pub, owner, nil).into(t, 200, nil)
	if code := closeCode(t, conn); code != 4502 {
		t.Fatalf("the session of a revoked key closed with %d, want 4502", code)
	}
	stream.waitEnd(t)
	closedWith(t, wsc, 4502)
	if code, _ := e.whoamiHTTP(e.A.Pub, gl.Token); code != 401 {
		t.Fatalf("HTTP JSON-RPC with a revoked token: %d", code)
	}
	e.api("GET", base, gl.Token, nil).wantError(t, 401, -32002)
	if _, _, err := e.rawWS("/"+e.A.Pub+"?token="+gl.Token, nil); err == nil {
		t.Fatal("a revoked token opened a session")
	}
	e.api("GET", base, owner, nil).into(t, 200, &keys)
	if len(keys.ClientKeys) != 1 || len(keys.Tokens) != 1 || keys.Tokens[0].PubKey != e.A.Pub {
		t.Fatalf("keys after revoking the guest = %+v", keys)
	}
	var who whoami
	if err := bc.Call(ctxT(t), "whoami", nil, &who); err != nil {
		t.Fatalf("the key's session in tenant B suffered: %v", err)
	}

	// The key logs in again at once, and one token is revoked by its id.
	again := e.adminLogin(guest, e.A.Pub)
	if code, _ := e.whoamiHTTP(e.A.Pub, again.Token); code != 200 {
		t.Fatalf("a new login after the revocation: %d", code)
	}
	other := e.adminLogin(guest, e.A.Pub)
	e.api("DELETE", base+"/tokens/"+tokenID(t, again.Token), owner, nil).into(t, 200, nil)
	if code, _ := e.whoamiHTTP(e.A.Pub, again.Token); code != 401 {
		t.Fatalf("a revoked token: %d", code)
	}
	if code, _ := e.whoamiHTTP(e.A.Pub, other.Token); code != 200 {
		t.Fatalf("the key's other token: %d", code)
	}
	// The owner of B cannot revoke A's token by naming its id on B.
	ownerB := e.adminLogin(e.B, e.B.Pub).Token
	e.api("DELETE", "/admin-api/tenants/"+e.B.Pub+"/keys/tokens/"+tokenID(t, other.Token), ownerB, nil).into(t, 200, nil)
	if code, _ := e.whoamiHTTP(e.A.Pub, other.Token); code != 200 {
		t.Fatalf("B's owner revoked a token of A: %d", code)
	}

	// A root revokes every key and token: tenants, the node, open sessions.
	rt := e.adminLogin(root, "").Token
	e.api("DELETE", "/admin-api/identity/keys", owner, nil).wantError(t, 403, -32003)
	e.api("DELETE", "/admin-api/identity/keys", rt, nil).into(t, 200, nil)
	closedWith(t, bc, 4502)
	for _, tok := range []string{owner, other.Token, ownerB} {
		if code, _ := e.whoamiHTTP(tenantOfToken(t, tok), tok); code != 401 {
			t.Fatalf("a token from before revoking everything: %d", code)
		}
	}
	e.api("GET", "/admin-api/tenants", rt, nil).wantError(t, 401, -32002)
	rt = e.adminLogin(root, "").Token
	e.api("GET", "/admin-api/tenants/"+e.A.Pub+"/keys", rt, nil).into(t, 200, &keys)
	if len(keys.ClientKeys) != 0 || len(keys.Tokens) != 0 {
		t.Fatalf("keys after revoking everything = %+v", keys)
	}
}

// tenantOfToken returns the tenant a cg1 token is for.
func tenantOfToken(t *testing.T, token string) string {
	t.Helper()
	var p struct {
		T string `json:"t"`
	}
	b, err := base64RawURL(strings.Split(token, ".")[1])
	if err != nil || json.Unmarshal(b, &p) != nil {
		t.Fatalf("token %q has no tenant", token)
	}
	return p.T
}

// TestTokenExpiryClosesConnections: a session or SSE stream ends when its token
// expires (4501), without waiting for a request.
func TestTokenExpiryClosesConnections(t *testing.T) {
	e := startEnv(t, func(c *Config) { c.Auth.TokenTTL = 3 * time.Second })
	k := testutil.NewKey(t)
	l := e.adminLogin(k, e.A.Pub)
	conn, _, err := e.rawWS("/"+e.A.Pub+"?token="+l.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream := e.openSSE(t, l.Token, "", nil)
	c, _ := e.login(e.A.Pub, k) // authenticated on the socket: the deadline moves to its token's expiry
	if code := closeCode(t, conn); code != 4501 {
		t.Fatalf("session closed with %d, want 4501", code)
	}
	stream.waitEnd(t)
	closedWith(t, c, 4501)
	// A client sees the close before the gateway has finished the session and
	// counted it: wait for the count.
	const expired = `circlegate_ws_disconnects_total{reason="token_expired"}`
	testutil.CheckFor(t, 5*time.Second, func() error { return e.metricAtLeast(expired, 3) })
	if v, err := e.metric(expired); err != nil || v != 3 {
		t.Fatalf("token_expired disconnects = %v, %v; want 3", v, err)
	}
}

// expiredToken forges an expired token of tenantKey for key with the gateway's own
// node secret: a token that was real, and has expired.
func (e *env) expiredToken(tenantKey, key string) string {
	return e.forgeToken(tenantKey, key, time.Now().Add(-48*time.Hour))
}

// validToken makes a token of tenantKey for key with the gateway's node secret, as
// the gateway would have issued it now.
func (e *env) validToken(tenantKey, key string) string {
	return e.forgeToken(tenantKey, key, time.Now())
}

func (e *env) forgeToken(tenantKey, key string, at time.Time) string {
	e.t.Helper()
	secret, err := os.ReadFile(filepath.Join(e.g.cfg.Data, "node.secret"))
	if err != nil {
		e.t.Fatal(err)
	}
	tok, _ := tenant.NewTokens(secret, func() time.Time { return at }).Issue(tenantKey, key, time.Hour)
	return tok
}

// closedWith waits for the server to close c and checks the close code.
func closedWith(t *testing.T, c *client.Client, code int) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("the session is still open; want it closed with %d", code)
	}
	var ce *client.CloseError
	if !errors.As(c.Err(), &ce) || ce.Code != code {
		t.Fatalf("session ended with %v, want close code %d", c.Err(), code)
	}
}

func base64RawURL(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

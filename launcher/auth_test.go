package launcher

import (
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/circlegate/circlegate/client"
	"github.com/circlegate/circlegate/internal/testutil"
	"github.com/circlegate/circlegate/rpc"
	"github.com/gorilla/websocket"
)

type whoami struct {
	PubKey string `json:"pubkey"`
	Tenant string `json:"tenant"`
	Role   string `json:"role"`
}

func TestRoles(t *testing.T) {
	e := startEnv(t)
	guest := testutil.NewKey(t)
	for _, tc := range []struct {
		name   string
		tenant string
		key    testutil.Key
		role   string
	}{
		{"tenant key is owner", e.A.Pub, e.A, "owner"},
		{"configured admin is owner", e.A.Pub, e.AdminA, "owner"},
		{"any other key is guest", e.A.Pub, guest, "guest"},
		{"admin of A is guest in B", e.B.Pub, e.AdminA, "guest"},
		{"owner of A is guest in B", e.B.Pub, e.A, "guest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, res := e.login(tc.tenant, tc.key)
			if !res.Authenticated || res.Role != tc.role || res.Token == "" || res.ExpiresAt <= time.Now().Unix() {
				t.Fatalf("authenticate = %+v", res)
			}
			var w whoami
			if err := c.Call(ctxT(t), "whoami", nil, &w); err != nil {
				t.Fatal(err)
			}
			if w != (whoami{tc.key.Pub, tc.tenant, tc.role}) {
				t.Fatalf("whoami = %+v", w)
			}
		})
	}
}

type nonceResult struct {
	Nonce     string `json:"nonce"`
	ExpiresAt int64  `json:"expiresAt"`
}

func fetchNonce(t *testing.T, c *client.Client, pub string) string {
	t.Helper()
	var n nonceResult
	if err := c.Call(ctxT(t), "fetch_nonce", map[string]string{"pubkey": pub}, &n); err != nil {
		t.Fatal(err)
	}
	if len(n.Nonce) < 32 || n.ExpiresAt < time.Now().Unix()+200 {
		t.Fatalf("fetch_nonce = %+v", n)
	}
	return n.Nonce
}

func TestAuthenticateRefusals(t *testing.T) {
	e := startEnv(t)
	alice, mallory := testutil.NewKey(t), testutil.NewKey(t)
	auth := func(c *client.Client, pub, sig, nonce string) error {
		p := map[string]string{"pubkey": pub, "signature": sig}
		if nonce != "" {
			p["nonce"] = nonce
		}
		return c.Call(ctxT(t), "authenticate", p, nil)
	}
	for _, tc := range []struct {
		name string
		run  func(c *client.Client) error
		code int
	}{
		{"signature of another message", func(c *client.Client) error {
			fetchNonce(t, c, alice.Pub)
			return auth(c, alice.Pub, alice.Sign("something else"), "")
		}, rpc.CodeInvalidCredentials},
		{"signature by another key", func(c *client.Client) error {
			n := fetchNonce(t, c, alice.Pub)
			return auth(c, alice.Pub, mallory.Sign(n), n)
		}, rpc.CodeInvalidCredentials},
		{"nonce issued to another pubkey", func(c *client.Client) error {
			n := fetchNonce(t, c, mallory.Pub)
			return auth(c, alice.Pub, alice.Sign(n), n)
		}, rpc.CodeInvalidCredentials},
		{"nonce issued by another tenant", func(c *client.Client) error {
			other := e.dial(e.B.Pub)
			n := fetchNonce(t, other, alice.Pub)
			return auth(c, alice.Pub, alice.Sign(n), n)
		}, rpc.CodeInvalidCredentials},
		{"nonce never issued", func(c *client.Client) error {
			return auth(c, alice.Pub, alice.Sign("deadbeef"), "deadbeef")
		}, rpc.CodeInvalidCredentials},
		{"reused nonce", func(c *client.Client) error {
			first := e.dial(e.A.Pub)
			n := fetchNonce(t, first, alice.Pub)
			if err := auth(first, alice.Pub, alice.Sign(n), n); err != nil {
				t.Fatalf("first use: %v", err)
			}
			return auth(c, alice.Pub, alice.Sign(n), n)
		}, rpc.CodeInvalidCredentials},
		{"malformed signature", func(c *client.Client) error {
			fetchNonce(t, c, alice.Pub)
			return auth(c, alice.Pub, "0x1234", "")
		}, rpc.CodeInvalidParams},
		{"v out of range", func(c *client.Client) error {
			n := fetchNonce(t, c, alice.Pub)
			sig := alice.Sign(n)
			return auth(c, alice.Pub, sig[:len(sig)-2]+"1d", n)
		}, rpc.CodeInvalidParams},
		{"malformed pubkey", func(c *client.Client) error {
			return c.Call(ctxT(t), "fetch_nonce", map[string]string{"pubkey": "02zz"}, nil)
		}, rpc.CodeInvalidParams},
		{"missing signature", func(c *client.Client) error {
			return c.Call(ctxT(t), "authenticate", map[string]string{"pubkey": alice.Pub}, nil)
		}, rpc.CodeInvalidParams},
		{"protected method before authentication", func(c *client.Client) error {
			return c.Call(ctxT(t), "whoami", nil, nil)
		}, rpc.CodeUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.dial(e.A.Pub)
			if code := rpcCode(tc.run(c)); code != tc.code {
				t.Fatalf("code = %d, want %d", code, tc.code)
			}
			// Nothing changed: the session is still unauthenticated.
			if code := rpcCode(c.Call(ctxT(t), "whoami", nil, nil)); code != rpc.CodeUnauthenticated {
				t.Fatalf("after refusal whoami code = %d, want -32001", code)
			}
		})
	}
}

func TestExpiredNonce(t *testing.T) {
	e := startEnv(t, func(c *Config) { c.Auth.NonceTTL = 50 * time.Millisecond })
	alice := testutil.NewKey(t)
	c := e.dial(e.A.Pub)
	var n nonceResult
	if err := c.Call(ctxT(t), "fetch_nonce", map[string]string{"pubkey": alice.Pub}, &n); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the nonce's TTL is the thing under test
	err := c.Call(ctxT(t), "authenticate", map[string]string{"pubkey": alice.Pub, "signature": alice.Sign(n.Nonce), "nonce": n.Nonce}, nil)
	if rpcCode(err) != rpc.CodeInvalidCredentials {
		t.Fatalf("err = %v, want -32002", err)
	}
}

func TestSignatureSpellings(t *testing.T) {
	e := startEnv(t)
	alice := testutil.NewKey(t)
	uncompressed := hex.EncodeToString(alice.Priv.PubKey().SerializeUncompressed())
	for _, tc := range []struct {
		name   string
		pubkey string
		sig    func(string) string
	}{
		{"v=27/28 with 0x", alice.Pub, alice.Sign},
		{"v=0/1 without 0x", "0x" + strings.ToUpper(alice.Pub), func(n string) string {
			s := alice.Sign(n)[2:]
			v := s[128:]
			if v == "1b" {
				v = "00"
			} else {
				v = "01"
			}
			return s[:128] + v
		}},
		{"uncompressed pubkey", uncompressed, alice.Sign},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.dial(e.A.Pub)
			n := fetchNonce(t, c, tc.pubkey)
			var res client.AuthResult
			if err := c.Call(ctxT(t), "authenticate", map[string]string{"pubkey": tc.pubkey, "signature": tc.sig(n)}, &res); err != nil {
				t.Fatal(err)
			}
			var w whoami
			if err := c.Call(ctxT(t), "whoami", nil, &w); err != nil || w.PubKey != alice.Pub {
				t.Fatalf("whoami = %+v, %v", w, err)
			}
		})
	}
}

func TestTenantRouting(t *testing.T) {
	e := startEnv(t)
	unknown := testutil.NewKey(t)
	uncompressed := hex.EncodeToString(e.A.Priv.PubKey().SerializeUncompressed())
	for _, tc := range []struct {
		name   string
		path   string
		status int
	}{
		{"compressed", "/" + e.A.Pub, http.StatusSwitchingProtocols},
		{"uncompressed, 0x, upper case", "/0x" + strings.ToUpper(uncompressed), http.StatusSwitchingProtocols},
		{"unknown tenant", "/" + unknown.Pub, http.StatusNotFound},
		{"malformed key", "/02abcd", http.StatusNotFound},
		{"not hex", "/hello", http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, resp, err := e.rawWS(tc.path, nil)
			if resp == nil {
				t.Fatalf("no response: %v", err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status != http.StatusSwitchingProtocols {
				if err != websocket.ErrBadHandshake {
					t.Fatalf("err = %v, want bad handshake", err)
				}
				return
			}
			defer conn.Close()
			// Both spellings reach the same tenant.
			_ = conn.WriteJSON(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "fetch_nonce", "params": []string{e.A.Pub}})
			var reply map[string]any
			if err := conn.ReadJSON(&reply); err != nil || reply["result"] == nil {
				t.Fatalf("reply = %v, %v", reply, err)
			}
		})
	}
	if code, _ := e.get("/health"); code != http.StatusOK {
		t.Fatalf("/health = %d", code)
	}
}

func TestTokens(t *testing.T) {
	e := startEnv(t)
	alice := testutil.NewKey(t)
	_, resA := e.login(e.A.Pub, alice)

	// HTTP JSON-RPC with the token.
	status, body := e.post("/"+e.A.Pub+"/jsonrpc", resA.Token, `{"jsonrpc":"2.0","id":1,"method":"whoami"}`)
	var reply struct {
		Result whoami     `json:"result"`
		Error  *rpc.Error `json:"error"`
	}
	mustJSON(t, body, &reply)
	if status != 200 || reply.Result.PubKey != alice.Pub || reply.Result.Role != "guest" {
		t.Fatalf("whoami over HTTP = %d %s", status, body)
	}
	// Without a token, protected methods answer -32001 in-band.
	_, body = e.post("/"+e.A.Pub+"/jsonrpc", "", `{"jsonrpc":"2.0","id":1,"method":"whoami"}`)
	reply.Error = nil
	mustJSON(t, body, &reply)
	if reply.Error == nil || reply.Error.Code != rpc.CodeUnauthenticated {
		t.Fatalf("whoami without token: %s", body)
	}
	// A token of tenant A is refused on tenant B, a forged one everywhere.
	for _, tc := range []struct{ tenant, token string }{
		{e.B.Pub, resA.Token},
		{e.A.Pub, resA.Token[:len(resA.Token)-2] + "AA"},
		{e.A.Pub, "garbage"},
	} {
		if status, body := e.post("/"+tc.tenant+"/jsonrpc", tc.token, `{"jsonrpc":"2.0","id":1,"method":"whoami"}`); status != http.StatusUnauthorized {
			t.Fatalf("token %q on %s: %d %s", tc.token, tc.tenant[:8], status, body)
		}
		if _, resp, _ := e.rawWS("/"+tc.tenant+"?token="+tc.token, nil); resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("upgrade with token %q on %s: %v", tc.token, tc.tenant[:8], resp)
		}
	}
	// ?token= authenticates a WebSocket at upgrade.
	c := e.dial(e.A.Pub, client.WithToken(resA.Token))
	var w whoami
	if err := c.Call(ctxT(t), "whoami", nil, &w); err != nil || w.PubKey != alice.Pub {
		t.Fatalf("whoami with ?token= = %+v, %v", w, err)
	}
	// Notification-only HTTP requests get 204.
	if status, _ := e.post("/"+e.A.Pub+"/jsonrpc", resA.Token, `{"jsonrpc":"2.0","method":"whoami"}`); status != http.StatusNoContent {
		t.Fatalf("notification status = %d", status)
	}
	// An oversized body is 413.
	big := `{"jsonrpc":"2.0","id":1,"method":"whoami","params":{"x":"` + strings.Repeat("a", 2<<20) + `"}}`
	if status, _ := e.post("/"+e.A.Pub+"/jsonrpc", "", big); status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body status = %d", status)
	}
}

func TestBrowserAuthForms(t *testing.T) {
	e := startEnv(t)
	alice := testutil.NewKey(t)
	status, body := e.get("/" + e.A.Pub + "/auth/nonce?pubkey=" + alice.Pub)
	var n nonceResult
	mustJSON(t, body, &n)
	if status != 200 || n.Nonce == "" {
		t.Fatalf("nonce: %d %s", status, body)
	}
	if status, body := e.get("/" + e.A.Pub + "/auth/nonce?pubkey=nothex"); status != http.StatusBadRequest {
		t.Fatalf("bad pubkey: %d %s", status, body)
	}
	if status, body := e.post("/"+e.A.Pub+"/auth/token", "", `{"pubkey":"`+alice.Pub+`","signature":"`+alice.Sign("wrong")+`"}`); status != http.StatusUnauthorized {
		t.Fatalf("wrong signature: %d %s", status, body)
	}
	if status, body := e.post("/"+e.A.Pub+"/auth/token", "", `{"pubkey":1}`); status != http.StatusBadRequest {
		t.Fatalf("bad body: %d %s", status, body)
	}
	status, body = e.post("/"+e.A.Pub+"/auth/token", "", `{"pubkey":"`+alice.Pub+`","signature":"`+alice.Sign(n.Nonce)+`"}`)
	var tok rpc.TokenResult
	mustJSON(t, body, &tok)
	if status != 200 || tok.Token == "" || tok.Role != "guest" {
		t.Fatalf("token: %d %s", status, body)
	}
	c := e.dial(e.A.Pub, client.WithToken(tok.Token))
	var w whoami
	if err := c.Call(ctxT(t), "whoami", nil, &w); err != nil || w.PubKey != alice.Pub {
		t.Fatalf("whoami = %+v, %v", w, err)
	}
}

func TestTokenValidAcrossRestart(t *testing.T) {
	data := t.TempDir()
	e := startEnv(t, func(c *Config) { c.Data = data })
	_, res := e.login(e.A.Pub, e.A)
	shutdown(t, e.g)
	e2 := startEnv(t, func(c *Config) {
		c.Data = data
		c.Tenants = []TenantConfig{{PubKey: e.A.Pub}}
	})
	if status, body := e2.post("/"+e.A.Pub+"/jsonrpc", res.Token, `{"jsonrpc":"2.0","id":1,"method":"whoami"}`); status != 200 || !strings.Contains(string(body), e.A.Pub) {
		t.Fatalf("token after restart: %d %s", status, body)
	}
}

package launcher

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/circlegate/circlegate/internal/testutil"
)

// apiReply is an admin API answer: {"data": ...} or {"error": {...}}.
type apiReply struct {
	Status int
	Data   json.RawMessage `json:"data"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Raw []byte `json:"-"`
}

// api calls an admin route with an optional bearer token and JSON body (a string is
// sent as is), and checks the answer's shape: data on 2xx, error otherwise.
func (e *env) api(method, path, token string, body any) apiReply {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, e.baseURL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	status, raw := e.do(req)
	r := apiReply{Status: status, Raw: raw}
	if err := json.Unmarshal(raw, &r); err != nil {
		e.t.Fatalf("%s %s: %d, not JSON: %s", method, path, status, raw)
	}
	r.Status, r.Raw = status, raw
	if ok := status < 300; ok != (r.Data != nil && r.Error == nil) {
		e.t.Fatalf("%s %s: status %d with body %s", method, path, status, raw)
	}
	return r
}

// into decodes the data of a 2xx reply, failing on any other status.
func (r apiReply) into(t *testing.T, want int, v any) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status %d, want %d: %s", r.Status, want, r.Raw)
	}
	if v != nil {
		if err := json.Unmarshal(r.Data, v); err != nil {
			t.Fatalf("data %s: %v", r.Data, err)
		}
	}
}

// wantError checks a refusal's status and wire code.
func (r apiReply) wantError(t *testing.T, status, code int) {
	t.Helper()
	if r.Status != status || r.Error == nil || r.Error.Code != code {
		t.Fatalf("got %d %s, want %d with code %d", r.Status, r.Raw, status, code)
	}
}

type challenge struct {
	Nonce         string `json:"nonce"`
	ExpiresAt     int64  `json:"expiresAt"`
	NodeSignature string `json:"nodeSignature"`
}

type login struct {
	Token     string `json:"token"`
	Role      string `json:"role"`
	ExpiresAt int64  `json:"expiresAt"`
}

// adminLogin logs k in through request-challenge and add-client-key, to tenantKey or,
// when it is empty, to the node.
func (e *env) adminLogin(k testutil.Key, tenantKey string) login {
	e.t.Helper()
	var c challenge
	e.api("POST", "/admin-api/request-challenge", "", map[string]string{"pubkey": k.Pub, "tenant": tenantKey}).into(e.t, 200, &c)
	var l login
	e.api("POST", "/admin-api/add-client-key", "", map[string]string{
		"pubkey": k.Pub, "signature": k.Sign(c.Nonce), "nonce": c.Nonce, "tenant": tenantKey,
	}).into(e.t, 200, &l)
	return l
}

// withRoot adds root keys to the config.
func withRoot(keys ...testutil.Key) func(*Config) {
	return func(c *Config) {
		for _, k := range keys {
			c.Admin.RootKeys = append(c.Admin.RootKeys, k.Pub)
		}
	}
}

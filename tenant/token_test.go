package tenant

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/circlegate/circlegate/errs"
)

var testSecret = bytes.Repeat([]byte{7}, 32)

const (
	tokTenant = "02aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	tokKey    = "03bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func TestTokenRoundTrip(t *testing.T) {
	clock := newFakeClock()
	tok := NewTokens(testSecret, clock.Now)
	token, claims := tok.Issue(tokTenant, tokKey, time.Hour)
	if !strings.HasPrefix(token, "cg1.") || strings.Count(token, ".") != 2 || len(token) > maxTokenLen {
		t.Fatalf("token %q", token)
	}
	if len(claims.ID) != 32 || claims.Tenant != tokTenant || claims.PubKey != tokKey ||
		!claims.IssuedAt.Equal(clock.Now()) || !claims.ExpiresAt.Equal(clock.Now().Add(time.Hour)) {
		t.Fatalf("claims %+v", claims)
	}
	got, err := tok.Verify(token, tokTenant)
	if err != nil {
		t.Fatal(err)
	}
	if got != claims {
		t.Fatalf("Verify = %+v, Issue = %+v", got, claims)
	}
	if _, other := tok.Issue(tokTenant, tokKey, time.Hour); other.ID == claims.ID {
		t.Fatal("two tokens share an ID")
	}
}

func TestTokenPayloadFormat(t *testing.T) {
	tok := NewTokens(testSecret, newFakeClock().Now)
	token, c := tok.Issue("t", "p", time.Minute)
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	want := `{"i":"` + c.ID + `","t":"t","p":"p","a":1700000000,"e":1700000060}`
	if string(payload) != want {
		t.Fatalf("payload %s, want %s", payload, want)
	}
	mac := hmac.New(sha256.New, testSecret)
	mac.Write([]byte(token[:strings.LastIndexByte(token, '.')]))
	if got := base64.RawURLEncoding.EncodeToString(mac.Sum(nil)); !strings.HasSuffix(token, "."+got) {
		t.Fatalf("MAC is not HMAC-SHA256 of cg1.payload: %s", token)
	}
}

func TestTokenExpiry(t *testing.T) {
	clock := newFakeClock()
	tok := NewTokens(testSecret, clock.Now)
	token, _ := tok.Issue(tokTenant, tokKey, time.Minute)
	clock.Advance(time.Minute - time.Nanosecond)
	if _, err := tok.Verify(token, tokTenant); err != nil {
		t.Fatalf("just before expiry: %v", err)
	}
	clock.Advance(time.Nanosecond)
	_, err := tok.Verify(token, tokTenant)
	wantKind(t, err, errs.InvalidCredentials, "token expired")
}

func TestTokenRefusals(t *testing.T) {
	tok := NewTokens(testSecret, newFakeClock().Now)
	token, _ := tok.Issue(tokTenant, tokKey, time.Hour)
	dot := strings.LastIndexByte(token, '.')
	otherSecret, _ := NewTokens(bytes.Repeat([]byte{8}, 32), newFakeClock().Now).Issue(tokTenant, tokKey, time.Hour)
	tests := []struct{ name, token, tenant, msg string }{
		{"other tenant", token, "02cc", "token for another tenant"},
		{"other secret", otherSecret, tokTenant, "bad token signature"},
		{"empty", "", tokTenant, "malformed token"},
		{"prefix only", "cg1.", tokTenant, "malformed token"},
		{"wrong version", "cg2" + token[3:], tokTenant, "malformed token"},
		{"no mac", token[:dot], tokTenant, "malformed token"},
		{"short mac", token[:len(token)-1], tokTenant, "malformed token"},
		{"long mac", token + "A", tokTenant, "malformed token"},
		{"mac not base64", token[:len(token)-2] + "!!", tokTenant, "malformed token"},
		{"mac padded", token[:len(token)-1] + "=", tokTenant, "malformed token"},
		{"oversized", "cg1." + strings.Repeat("A", maxTokenLen) + token[dot:], tokTenant, "malformed token"},
		{"payload swapped", "cg1.e30" + token[dot:], tokTenant, "bad token signature"},
		{"signed bad json", forge("bm90IGpzb24"), tokTenant, "malformed token"}, // "not json"
		{"signed bad base64", forge("!!!"), tokTenant, "malformed token"},       //
		{"signed empty claims", forge("e30"), tokTenant, "malformed token"},     // "{}"
		{"signed extra dot", forge("e30.e30"), tokTenant, "malformed token"},    //
		{"signed wrong types", forge(b64json(`{"i":1,"t":2}`)), tokTenant, "malformed token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tok.Verify(tt.token, tt.tenant)
			wantKind(t, err, errs.InvalidCredentials, tt.msg)
		})
	}
}

// forge returns a token with the given encoded payload and a valid MAC under testSecret.
func forge(payloadB64 string) string {
	signed := "cg1." + payloadB64
	mac := hmac.New(sha256.New, testSecret)
	mac.Write([]byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func b64json(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestTokenForgedValidPayload(t *testing.T) {
	// A correctly signed payload with extra fields and escapes still verifies: the
	// check is the MAC, not the JSON spelling.
	clock := newFakeClock()
	tok := NewTokens(testSecret, clock.Now)
	p, _ := json.Marshal(map[string]any{"i": "id", "t": tokTenant, "p": tokKey, "a": 1, "e": clock.Now().Unix() + 10, "x": "y"})
	c, err := tok.Verify(forge(b64json(string(p))), tokTenant)
	if err != nil || c.ID != "id" || c.PubKey != tokKey {
		t.Fatalf("Verify = %+v, %v", c, err)
	}
}

func TestTokenTamperEveryByte(t *testing.T) {
	tok := NewTokens(testSecret, newFakeClock().Now)
	token, _ := tok.Issue(tokTenant, tokKey, time.Hour)
	for i := range len(token) {
		for _, c := range []byte{'A', 'B', '_', '.'} {
			if token[i] == c {
				continue
			}
			bad := token[:i] + string(c) + token[i+1:]
			if _, err := tok.Verify(bad, tokTenant); errs.KindOf(err) != errs.InvalidCredentials {
				t.Fatalf("tampered token %q (byte %d): %v", bad, i, err)
			}
		}
	}
}

func TestNewTokensShortSecretPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for a 15-byte secret")
		}
	}()
	NewTokens(make([]byte, 15), nil)
}

func TestNewTokensCopiesSecret(t *testing.T) {
	secret := bytes.Clone(testSecret)
	tok := NewTokens(secret, nil) // nil clock: time.Now
	token, _ := tok.Issue(tokTenant, tokKey, time.Hour)
	secret[0]++
	if _, err := tok.Verify(token, tokTenant); err != nil {
		t.Fatalf("Verify after caller changed its secret slice: %v", err)
	}
}

func TestTokenVerifyAllocs(t *testing.T) {
	tok := NewTokens(testSecret, newFakeClock().Now)
	token, _ := tok.Issue(tokTenant, tokKey, time.Hour)
	ok := testing.AllocsPerRun(100, func() { _, _ = tok.Verify(token, tokTenant) })
	bad := testing.AllocsPerRun(100, func() { _, _ = tok.Verify(token[:len(token)-1]+"B", tokTenant) })
	t.Logf("allocs: valid %v, bad signature %v", ok, bad)
	// Without -race: 8 and 3. The race detector makes sync.Pool drop items, adding a few.
	if ok > 12 || bad > 6 {
		t.Fatalf("Verify allocates %v (valid) and %v (bad signature) times", ok, bad)
	}
}

func BenchmarkTokenVerify(b *testing.B) {
	tok := NewTokens(testSecret, nil)
	token, _ := tok.Issue(tokTenant, tokKey, time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tok.Verify(token, tokTenant); err != nil {
			b.Fatal(err)
		}
	}
}

func TestLoadOrCreateSecret(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "node")
	first, err := LoadOrCreateSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	second, err := LoadOrCreateSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 32 || !bytes.Equal(first, second) {
		t.Fatalf("secrets differ across loads: %x, %x", first, second)
	}
	fi, err := os.Stat(filepath.Join(dir, "node.secret"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode %v, %v", fi.Mode(), err)
	}
	if di, err := os.Stat(dir); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("data dir mode %v, %v", di.Mode(), err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("data dir holds %d entries, want only node.secret", len(entries))
	}
	// A token made with the first secret verifies after a "restart".
	token, _ := NewTokens(first, nil).Issue(tokTenant, tokKey, time.Hour)
	if _, err := NewTokens(second, nil).Verify(token, tokTenant); err != nil {
		t.Fatalf("token invalid after restart: %v", err)
	}
}

func TestLoadOrCreateSecretWrongSize(t *testing.T) {
	for _, size := range []int{0, 31, 33} {
		dir := t.TempDir()
		path := filepath.Join(dir, "node.secret")
		if err := os.WriteFile(path, make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreateSecret(dir)
		if err == nil || !strings.Contains(err.Error(), "want 32 bytes") || !strings.Contains(err.Error(), path) {
			t.Fatalf("size %d: %v", size, err)
		}
	}
}

func TestLoadOrCreateSecretUnreadable(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "node.secret"), 0o700); err != nil { // a directory
		t.Fatal(err)
	}
	if _, err := LoadOrCreateSecret(dir); err == nil {
		t.Fatal("no error when node.secret is a directory")
	}
}

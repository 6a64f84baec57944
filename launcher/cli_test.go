package launcher

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/circlegate/circlegate/client"
	"github.com/circlegate/circlegate/internal/testapps"
	"github.com/circlegate/circlegate/internal/testutil"
	"github.com/circlegate/circlegate/tenant"
	"github.com/gorilla/websocket"
)

func runMain(ctx context.Context, args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := Main(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestVersionAndUsage(t *testing.T) {
	if code, out, _ := runMain(context.Background(), "version"); code != 0 || !strings.HasPrefix(out, "circlegate ") {
		t.Fatalf("version: %d %q", code, out)
	}
	if code, _, errOut := runMain(context.Background(), "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errOut)
	}
	if code, _, _ := runMain(context.Background()); code != 2 {
		t.Fatalf("no command: %d", code)
	}
}

func TestKeygen(t *testing.T) {
	code, out, _ := runMain(context.Background(), "keygen")
	var kp KeyPair
	if err := json.Unmarshal([]byte(out), &kp); code != 0 || err != nil {
		t.Fatalf("keygen: %d %q %v", code, out, err)
	}
	priv, err := client.ParsePrivateKey(kp.PrivateKey)
	if err != nil || tenant.PubKeyHex(priv.PubKey()) != kp.PublicKey {
		t.Fatalf("key pair does not match: %+v", kp)
	}
}

func TestSign(t *testing.T) {
	k := testutil.NewKey(t)
	priv := hex.EncodeToString(k.Priv.Serialize())
	code, out, _ := runMain(context.Background(), "sign", "--key", priv, "a nonce")
	if code != 0 {
		t.Fatalf("sign: %d %q", code, out)
	}
	if err := tenant.VerifyPersonal(k.Pub, []byte("a nonce"), strings.TrimSpace(out)); err != nil {
		t.Fatalf("sign printed %q, which does not verify: %v", out, err)
	}
	for _, args := range [][]string{{"sign", "a nonce"}, {"sign", "--key", priv}, {"sign", "--key", "01", "x"}, {"sign", "--key", priv, "a", "b"}} {
		if code, out, _ := runMain(context.Background(), args...); code != 2 || out != "" {
			t.Errorf("%v: %d %q, want 2 and nothing printed", args, code, out)
		}
	}
}

// TestServeWithRootKeysOnly: a node with root keys and no tenant starts (tenants
// come through the admin API); with neither it does not.
func TestServeWithRootKeysOnly(t *testing.T) {
	root := testutil.NewKey(t)
	dir := t.TempDir()
	if code, out, errOut := runMain(context.Background(), "serve", "--data", dir, "--root-key", root.Pub, "--check-config"); code != 0 {
		t.Fatalf("serve --root-key --check-config: %d %q %q", code, out, errOut)
	}
	if code, _, errOut := runMain(context.Background(), "serve", "--data", dir, "--root-key", "nope", "--check-config"); code != 2 || !strings.Contains(errOut, "admin.root_keys[0]") {
		t.Fatalf("a bad root key: %d %q", code, errOut)
	}
	if code, _, errOut := runMain(context.Background(), "serve", "--data", dir, "--check-config"); code != 2 || !strings.Contains(errOut, "tenants") {
		t.Fatalf("neither tenants nor root keys: %d %q", code, errOut)
	}
	if code, _, errOut := runMain(context.Background(), "serve", "--data", dir, "--dev", "--check-config"); code != 0 {
		t.Fatalf("serve --dev --check-config: %d %q", code, errOut)
	}
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// hookTOML is a [[tenants.webhook_secrets]] entry with the given secret lines.
func hookTOML(provider, name, secretLines string) string {
	return fmt.Sprintf("[[tenants.webhook_secrets]]\nprovider = %q\nname = %q\n%s\n", provider, name, secretLines)
}

func TestCheckConfig(t *testing.T) {
	t.Setenv("CG_TEST_HOOK_SECRET", "hook secret value not base64!")
	k := testutil.NewKey(t)
	tenantTOML := "[[tenants]]\npubkey = \"" + k.Pub + "\"\n"
	for _, tc := range []struct {
		name, body string
		code       int
		want       string
	}{
		{"valid", tenantTOML, 0, "config ok"},
		{"unknown key", "[sessions]\nmax_conections = 5\n" + tenantTOML, 2, "sessions.max_conections: unknown key"},
		{"bad value", "[sessions]\nmax_message_bytes = 10\n" + tenantTOML, 2, "sessions.max_message_bytes: must be at least 256"},
		{"bad duration", "[auth]\ntoken_ttl = \"soon\"\n" + tenantTOML, 2, "circlegate.toml"},
		{"bad tenant key", "[[tenants]]\npubkey = \"02abcd\"\n", 2, "tenants[0].pubkey"},
		{"bad admin key", tenantTOML + "admins = [\"nope\"]\n", 2, "tenants[0].admins[0]"},
		{"no tenant", "listen = \"127.0.0.1:9\"\n", 2, "tenants: no tenant configured"},
		{"bad log level", "[log]\nlevel = \"loud\"\n" + tenantTOML, 2, "log.level"},
		{"bad workers", "[execution]\nworkers = -5\n" + tenantTOML, 2, "execution.workers"},
		{"bad queue capacity", "[execution.queue]\ncapacity = -1\n" + tenantTOML, 2, "execution.queue.capacity"},
		{"bad limit", "[execution.limits]\nmax_writes = -1\n" + tenantTOML, 2, "execution.limits.max_writes"},
		{"bad history", "[store.history]\nmax_events = -1\n" + tenantTOML, 2, "store.history.max_events"},
		{"tls without cert", "[tls]\nenabled = true\n" + tenantTOML, 2, "tls.cert: required"},
		{"syntax error", "listen = \n", 2, "line 1"},
		{"accept only without redis", "[execution]\nworkers = -1\n" + tenantTOML, 2, "execution.workers: -1 (accept only) needs redis.url"},
		{"bad job record ttl", "[execution]\njob_record_ttl = \"10ms\"\n" + tenantTOML, 2, "execution.job_record_ttl"},
		{"fleet", "[redis]\nurl = \"redis://127.0.0.1:1/2\"\n" + tenantTOML, 0, "config ok"},
		{"bad redis url", "[redis]\nurl = \"http://127.0.0.1:1\"\n" + tenantTOML, 2, "redis.url"},
		{"bad redis prefix", "[redis]\nurl = \"redis://127.0.0.1:1\"\nprefix = \"a{b}\"\n" + tenantTOML, 2, "redis.prefix"},
		{"bad visibility timeout", "[redis]\nurl = \"redis://127.0.0.1:1\"\n[redis.queue]\nvisibility_timeout = \"1ms\"\n" + tenantTOML, 2, "redis.queue.visibility_timeout"},
		{"bad max attempts", "[redis]\nurl = \"redis://127.0.0.1:1\"\n[redis.queue]\nmax_attempts = -1\n" + tenantTOML, 2, "redis.queue.max_attempts"},
		{"bad webhook body limit", "[webhooks]\nmax_body_bytes = 10\n" + tenantTOML, 2, "webhooks.max_body_bytes: must be at least 1024"},
		{"bad stripe tolerance", "[webhooks.stripe]\ntolerance = \"-1s\"\n" + tenantTOML, 2, "webhooks.stripe.tolerance"},
		{"webhook secret", tenantTOML + hookTOML("stripe", "", "secret = \"whsec_abc\""), 0, "config ok"},
		{"webhook secret from env", tenantTOML + hookTOML("idenfy", "", "secret_env = \"CG_TEST_HOOK_SECRET\""), 0, "config ok"},
		{"webhook provider", tenantTOML + hookTOML("paypal", "", "secret = \"x\""), 2, "tenants[0].webhook_secrets[0].provider: must be stripe, idenfy or standard"},
		{"webhook name", tenantTOML + hookTOML("standard", "", "secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\""), 2, "tenants[0].webhook_secrets[0].name: is required"},
		{"webhook standard secret", tenantTOML + hookTOML("standard", "a", "secret = \"not-base64!\""), 2, "tenants[0].webhook_secrets[0].secret: must be whsec_"},
		{"webhook secret and env", tenantTOML + hookTOML("stripe", "", "secret = \"a\"\nsecret_env = \"CG_TEST_HOOK_SECRET\""), 2, "webhook_secrets[0].secret: set secret or secret_env, not both"},
		{"webhook env unset", tenantTOML + hookTOML("stripe", "", "secret_env = \"CG_TEST_HOOK_UNSET\""), 2, "webhook_secrets[0].secret_env: environment variable CG_TEST_HOOK_UNSET is not set"},
		{"webhook env value bad", tenantTOML + hookTOML("standard", "a", "secret_env = \"CG_TEST_HOOK_SECRET\""), 2, "webhook_secrets[0].secret_env: must be whsec_"},
		{"webhook unknown key", tenantTOML + hookTOML("stripe", "", "secrt = \"a\""), 2, "tenants.webhook_secrets.secrt: unknown key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, "circlegate.toml", tc.body)
			code, out, errOut := runMain(context.Background(), "serve", "--config", path, "--check-config")
			if code != tc.code || !strings.Contains(out+errOut, tc.want) {
				t.Fatalf("exit %d, output %q %q; want exit %d containing %q", code, out, errOut, tc.code, tc.want)
			}
			if tc.code != 0 && !strings.Contains(errOut, path) {
				t.Fatalf("error does not name the file: %q", errOut)
			}
			if strings.Contains(out+errOut, "hook secret value") || strings.Contains(out+errOut, "not-base64!") {
				t.Fatalf("the output holds a secret: %q", errOut)
			}
		})
	}
	// Flags override the file.
	path := writeFile(t, "circlegate.toml", "listen = \"nonsense\"\n"+tenantTOML)
	if code, _, errOut := runMain(context.Background(), "serve", "--config", path, "--listen", "127.0.0.1:0", "--check-config"); code != 0 {
		t.Fatalf("flag did not override the file: %q", errOut)
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--config", "../configs/circlegate.toml"},
		{"serve", "--config", "../configs/fleet.toml"},
		{"worker", "--config", "../configs/fleet.toml"},
	} {
		code, out, errOut := runMain(context.Background(), append(args, "--check-config")...)
		if code != 0 || !strings.Contains(out, "config ok") {
			t.Errorf("%v: %d %s %s", args, code, out, errOut)
		}
	}
}

// TestFleetFlags: --workers and the worker command refuse what cannot run.
func TestFleetFlags(t *testing.T) {
	k := testutil.NewKey(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"serve", "-k", k.Pub, "--workers", "0"}, 2, "--workers 0 needs --redis"},
		{[]string{"serve", "-k", k.Pub, "--workers", "-3"}, 2, "--workers -3"},
		{[]string{"serve", "-k", k.Pub, "--redis", "redis://127.0.0.1:1", "--workers", "0"}, 0, "config ok"},
		{[]string{"serve", "-k", k.Pub, "--redis", "ftp://x"}, 2, "redis.url"},
		{[]string{"worker"}, 2, "worker needs --redis"},
		{[]string{"worker", "--redis", "redis://127.0.0.1:1", "--concurrency", "-1"}, 2, "--concurrency -1"},
		{[]string{"worker", "--redis", "redis://127.0.0.1:1", "--concurrency", "4"}, 0, "config ok"},
	} {
		code, out, errOut := runMain(context.Background(), append(tc.args, "--check-config")...)
		if code != tc.code || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("%v: exit %d, %q %q; want %d containing %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listenRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// serveMain runs `circlegate serve args...` in a goroutine until the returned cancel
// is called; it returns the address and a channel with the exit code.
func serveMain(t *testing.T, args ...string) (addr string, stdout *syncBuffer, cancel context.CancelFunc, exit chan int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	exit = make(chan int, 1)
	go func() { exit <- Main(ctx, append([]string{"serve"}, args...), stdout, stderr) }()
	testutil.CheckFor(t, 5*time.Second, func() error {
		if m := listenRE.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
			return nil
		}
		select {
		case code := <-exit:
			t.Fatalf("serve exited %d: %s", code, stderr.String())
		default:
		}
		return os.ErrNotExist
	})
	return addr, stdout, cancel, exit
}

func TestServeAndCallCommands(t *testing.T) {
	owner := testutil.NewKey(t)
	addr, _, cancel, exit := serveMain(t, "-k", owner.Pub, "--listen", "127.0.0.1:0", "--data", t.TempDir())
	url := "ws://" + addr + "/" + owner.Pub
	privHex := hex.EncodeToString(owner.Priv.Serialize())

	code, out, errOut := runMain(context.Background(), "call", "--url", url, "--key", privHex, "whoami")
	var w whoami
	if code != 0 || json.Unmarshal([]byte(out), &w) != nil || w.Role != "owner" || w.PubKey != owner.Pub {
		t.Fatalf("call whoami: %d %q %q", code, out, errOut)
	}
	code, _, errOut = runMain(context.Background(), "call", "--url", url, "whoami")
	if code != 1 || !strings.Contains(errOut, "error -32001") {
		t.Fatalf("call without key: %d %q", code, errOut)
	}
	code, out, _ = runMain(context.Background(), "call", "--url", url, "fetch_nonce", `["`+owner.Pub+`"]`)
	if code != 0 || !strings.Contains(out, `"nonce"`) {
		t.Fatalf("call with positional params: %d %q", code, out)
	}
	if code, _, _ := runMain(context.Background(), "call", "--url", url, "whoami", "{not json"); code != 2 {
		t.Fatalf("bad params JSON: exit %d", code)
	}
	wasm := writeFile(t, "app.wasm", string(testapps.Build(t, "watcounter")))
	code, out, errOut = runMain(context.Background(), "call", "--url", url, "--key", privHex, "--b64", "wasm="+wasm, "app.install", `{"name":"w"}`)
	var app appInfo
	if code != 0 || json.Unmarshal([]byte(out), &app) != nil || len(app.AppID) != 64 {
		t.Fatalf("call app.install --b64: %d %q %q", code, out, errOut)
	}

	// A session open at SIGTERM gets 1001 going away, and serve exits 0.
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cancel()
	if code := closeCode(t, conn); code != websocket.CloseGoingAway {
		t.Fatalf("close code = %d", code)
	}
	select {
	case code := <-exit:
		if code != 0 {
			t.Fatalf("serve exit %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not exit")
	}
}

func TestDemoTenantIsKept(t *testing.T) {
	data := t.TempDir()
	_, out, cancel, exit := serveMain(t, "--demo", "--listen", "127.0.0.1:0", "--data", data)
	cancel()
	<-exit
	first := out.String()
	if !strings.Contains(first, "public key:") {
		t.Fatalf("demo key pair not printed: %q", first)
	}
	_, out, cancel, exit = serveMain(t, "--demo", "--listen", "127.0.0.1:0", "--data", data)
	cancel()
	<-exit
	if out.String() != first {
		t.Fatalf("demo tenant changed across restarts:\n%s\n%s", first, out.String())
	}
}

func TestTLS(t *testing.T) {
	certFile, keyFile, pool := selfSignedCert(t)
	e := startEnv(t, func(c *Config) { c.TLS = TLSConfig{Enabled: true, Cert: certFile, Key: keyFile} })
	if !strings.HasPrefix(e.baseURL, "https://") {
		t.Fatalf("base URL %s", e.baseURL)
	}
	d := &websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: pool}, HandshakeTimeout: 5 * time.Second}
	c, err := client.Dial(ctxT(t), "wss://"+e.g.Addr()+"/"+e.A.Pub, client.WithDialer(d))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Authenticate(ctxT(t), e.A.Priv); err != nil {
		t.Fatal(err)
	}
}

func selfSignedCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile = writeFile(t, "cert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	keyFile = writeFile(t, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})))
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

package launcher

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/circlegate/circlegate/client"
	"github.com/circlegate/circlegate/execution"
	"github.com/circlegate/circlegate/internal/testapps"
	"github.com/circlegate/circlegate/internal/testutil"
	"github.com/circlegate/circlegate/rpc"
	"github.com/stripe/stripe-go/v76/webhook"
)

const (
	testStripeSecret = "whsec_circlegate_test_secret_0001"
	testIdenfySecret = "idenfy-callback-signing-key-0001"
	// testStandardSecret is whsec_ and the base64 of 32 bytes.
	testStandardSecret = "whsec_Y2lyY2xlZ2F0ZSB0ZXN0IGtleSAzMiBieXRlcyEh"
)

// hookReply is the body of a webhook reply: an outcome, or an error.
type hookReply struct {
	Outcome    string   `json:"outcome"`
	DeliveryID string   `json:"deliveryId"`
	EventID    string   `json:"eventId"`
	Type       string   `json:"type"`
	Duplicate  bool     `json:"duplicate"`
	Result     txResult `json:"result"`
	Error      *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    struct {
			Outcome    string `json:"outcome"`
			DeliveryID string `json:"deliveryId"`
		} `json:"data"`
	} `json:"error"`
}

// outcome is the outcome of a reply, from its body or its error data.
func (r hookReply) outcome() string {
	if r.Error != nil {
		return r.Error.Data.Outcome
	}
	return r.Outcome
}

// hook posts a webhook and decodes the reply.
func (e *env) hook(path string, header http.Header, body []byte) (int, hookReply, http.Header) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.baseURL+path, bytes.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var r hookReply
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		e.t.Fatalf("POST %s: %d with a body that is not JSON: %v", path, resp.StatusCode, err)
	}
	return resp.StatusCode, r, resp.Header
}

func stripeBody(id, typ string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"object":"event","api_version":"2020-08-27","created":1700000000,"type":%q,"livemode":false,"pending_webhooks":1,"data":{"object":{"id":"pi_1","object":"payment_intent","amount":2000,"currency":"eur"}}}`, id, typ)
}

func stripeHeader(body []byte, secret string, at time.Time) http.Header {
	p := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: at})
	return http.Header{"Stripe-Signature": {p.Header}}
}

// ledger is a tenant owner's session with the ledger app installed and n contexts.
type ledger struct {
	e        *env
	owner    *client.Client
	contexts []string
}

func newLedger(t *testing.T, e *env, n int) *ledger {
	t.Helper()
	owner, _ := e.login(e.A.Pub, e.A)
	appID := install(t, owner, "ledger")
	l := &ledger{e: e, owner: owner}
	for range n {
		l.contexts = append(l.contexts, createContext(t, owner, map[string]any{"appId": appID}).ContextID)
	}
	return l
}

// count queries the ledger count of context i.
func (l *ledger) count(i int) int {
	l.e.t.Helper()
	var r struct {
		Output struct {
			Count int `json:"count"`
		} `json:"output"`
	}
	if err := l.owner.Call(ctxT(l.e.t), "query", map[string]any{"contextId": l.contexts[i], "method": "count"}, &r); err != nil {
		l.e.t.Fatalf("query count: %v", err)
	}
	return r.Output.Count
}

func (l *ledger) call(method string, params, result any) {
	l.e.t.Helper()
	if err := l.owner.Call(ctxT(l.e.t), method, params, result); err != nil {
		l.e.t.Fatalf("%s: %v", method, err)
	}
}

// deliveries reads the whole delivery log, newest first.
func (l *ledger) deliveries() []map[string]any {
	l.e.t.Helper()
	var out []map[string]any
	before := ""
	for {
		var page struct {
			Deliveries []map[string]any `json:"deliveries"`
			Next       string           `json:"next"`
		}
		params := map[string]any{"limit": 3}
		if before != "" {
			params["before"] = before
		}
		l.call("webhook.deliveries", params, &page)
		out = append(out, page.Deliveries...)
		if page.Next == "" {
			return out
		}
		before = page.Next
	}
}

func TestWebhookStripe(t *testing.T) {
	e := startEnv(t)
	l := newLedger(t, e, 1)
	var sec struct {
		SecretID string `json:"secretId"`
		Provider string `json:"provider"`
		Source   string `json:"source"`
	}
	var raw json.RawMessage
	l.call("webhook.secret.add", map[string]any{"provider": "stripe", "secret": testStripeSecret}, &raw)
	mustJSON(t, raw, &sec)
	if sec.SecretID == "" || sec.Provider != "stripe" || sec.Source != "api" || strings.Contains(string(raw), testStripeSecret) {
		t.Fatalf("webhook.secret.add = %s", raw)
	}
	l.call("webhook.secret.list", nil, &raw)
	if !strings.Contains(string(raw), sec.SecretID) || strings.Contains(string(raw), testStripeSecret) {
		t.Fatalf("webhook.secret.list = %s", raw)
	}
	var route struct {
		RouteID string `json:"routeId"`
	}
	l.call("webhook.route.set", map[string]any{"provider": "stripe", "eventType": "payment_intent.*", "contextId": l.contexts[0], "method": "record"}, &route)

	path := "/webhooks/stripe/" + e.A.Pub
	now := time.Now()
	body := stripeBody("evt_1", "payment_intent.succeeded")
	status, first, _ := e.hook(path, stripeHeader(body, testStripeSecret, now), body)
	if status != http.StatusOK || first.Outcome != "applied" || first.Duplicate || first.EventID != "evt_1" || first.Result.TxID == "" || first.DeliveryID == "" {
		t.Fatalf("first delivery: %d %+v", status, first)
	}
	// The app got {provider, id, type, created, data} with data the verified payload.
	var got struct {
		Output struct {
			Provider string          `json:"provider"`
			ID       string          `json:"id"`
			Type     string          `json:"type"`
			Created  int64           `json:"created"`
			Data     json.RawMessage `json:"data"`
		} `json:"output"`
	}
	l.call("query", map[string]any{"contextId": l.contexts[0], "method": "get", "args": map[string]string{"id": "evt_1"}}, &got)
	if o := got.Output; o.Provider != "stripe" || o.ID != "evt_1" || o.Type != "payment_intent.succeeded" || o.Created != 1700000000 || !jsonEqual(o.Data, body) {
		t.Fatalf("recorded event = %+v", o)
	}
	// A replay (Stripe retries with a new signature; the payload's pending_webhooks
	// changed too) is a duplicate: 200 and the first outcome, nothing applied again.
	replay := bytes.Replace(body, []byte(`"pending_webhooks":1`), []byte(`"pending_webhooks":0`), 1)
	for _, b := range [][]byte{body, replay} {
		status, dup, _ := e.hook(path, stripeHeader(b, testStripeSecret, now.Add(time.Second)), b)
		if status != http.StatusOK || dup.Outcome != "duplicate" || !dup.Duplicate || dup.Result.TxID != first.Result.TxID || dup.Result.JobID != first.Result.JobID {
			t.Fatalf("replay: %d %+v, first %+v", status, dup, first)
		}
	}

	// No route for the type: 202, logged, nothing run.
	other := stripeBody("evt_2", "charge.refunded")
	if status, r, _ := e.hook(path, stripeHeader(other, testStripeSecret, now), other); status != http.StatusAccepted || r.Outcome != "no_route" || r.EventID != "evt_2" {
		t.Fatalf("no route: %d %+v", status, r)
	}

	// Refused requests: nothing runs for any of them.
	bad := stripeBody("evt_3", "payment_intent.created")
	tampered := bytes.Replace(bad, []byte("2000"), []byte("9000"), 1)
	notJSON := []byte("amount=2000")
	big := append(bytes.Repeat([]byte(" "), 1<<20), bad...)
	for _, tc := range []struct {
		name   string
		path   string
		header http.Header
		body   []byte
		status int
		out    string
	}{
		{"wrong secret", path, stripeHeader(bad, "whsec_not_the_secret", now), bad, 400, "bad_signature"},
		{"tampered body", path, stripeHeader(bad, testStripeSecret, now), tampered, 400, "bad_signature"},
		{"missing signature", path, nil, bad, 400, "bad_signature"},
		{"malformed signature", path, http.Header{"Stripe-Signature": {"t=x,v1=y"}}, bad, 400, "bad_signature"},
		{"stale timestamp", path, stripeHeader(bad, testStripeSecret, now.Add(-10*time.Minute)), bad, 400, "bad_timestamp"},
		{"future timestamp", path, stripeHeader(bad, testStripeSecret, now.Add(10*time.Minute)), bad, 400, "bad_timestamp"},
		{"signed non-JSON body", path, stripeHeader(notJSON, testStripeSecret, now), notJSON, 400, "bad_payload"},
		{"body over 1 MiB", path, stripeHeader(big, testStripeSecret, now), big, 413, "too_large"},
		{"unknown tenant", "/webhooks/stripe/" + testutil.NewKey(t).Pub, stripeHeader(bad, testStripeSecret, now), bad, 404, "unknown_tenant"},
		{"malformed tenant", "/webhooks/stripe/nonsense", stripeHeader(bad, testStripeSecret, now), bad, 404, "unknown_tenant"},
		{"tenant B has no stripe secret", "/webhooks/stripe/" + e.B.Pub, stripeHeader(bad, testStripeSecret, now), bad, 400, "bad_signature"},
	} {
		status, r, _ := e.hook(tc.path, tc.header, tc.body)
		if status != tc.status || r.Error == nil || r.outcome() != tc.out {
			t.Errorf("%s: %d %+v, want %d %s", tc.name, status, r, tc.status, tc.out)
		}
		if r.Error != nil && strings.Contains(r.Error.Message, testStripeSecret) {
			t.Errorf("%s: the reply holds the secret", tc.name)
		}
	}
	if n := l.count(0); n != 1 {
		t.Fatalf("ledger count %d, want 1: a refused or duplicate delivery ran", n)
	}
	var ctxInfo contextInfo
	l.call("context.get", []string{l.contexts[0]}, &ctxInfo)
	if ctxInfo.Seq != 1 {
		t.Fatalf("context seq %d, want 1", ctxInfo.Seq)
	}

	// The delivery log holds every request that reached tenant A, newest first.
	log := l.deliveries()
	var outcomes []string
	for _, d := range log {
		outcomes = append(outcomes, d["outcome"].(string))
	}
	want := []string{"too_large", "bad_payload", "bad_timestamp", "bad_timestamp", "bad_signature", "bad_signature", "bad_signature", "bad_signature", "no_route", "duplicate", "duplicate", "applied"}
	if strings.Join(outcomes, " ") != strings.Join(want, " ") {
		t.Fatalf("delivery log outcomes %v, want %v", outcomes, want)
	}
	applied := log[len(log)-1]
	if applied["eventId"] != "evt_1" || applied["verified"] != true || applied["jobId"] != first.Result.JobID || applied["txId"] != first.Result.TxID ||
		applied["routeId"] != route.RouteID || applied["contextId"] != l.contexts[0] || applied["method"] != "record" || applied["status"] != 200.0 {
		t.Fatalf("applied entry = %v", applied)
	}
	if dup := log[len(log)-2]; dup["duplicate"] != true || dup["txId"] != first.Result.TxID {
		t.Fatalf("duplicate entry = %v", dup)
	}
	if wrong := log[len(log)-5]; wrong["verified"] != false || wrong["error"] == "" {
		t.Fatalf("refused entry = %v", wrong)
	}
	logJSON, _ := json.Marshal(log)
	if bytes.Contains(logJSON, []byte(testStripeSecret)) {
		t.Fatal("the delivery log holds the secret")
	}
	for sample, want := range map[string]float64{
		`circlegate_webhook_deliveries_total{outcome="applied",provider="stripe"}`:        1,
		`circlegate_webhook_deliveries_total{outcome="duplicate",provider="stripe"}`:      2,
		`circlegate_webhook_deliveries_total{outcome="unknown_tenant",provider="stripe"}`: 2,
		`circlegate_webhook_deliveries_total{outcome="bad_signature",provider="stripe"}`:  5,
	} {
		if v, err := e.metric(sample); err != nil || v != want {
			t.Errorf("%s = %v (%v), want %v", sample, v, err, want)
		}
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}

// TestWebhookConcurrentDuplicates: ten concurrent posts of one event apply it once;
// one reply says applied, nine say duplicate, all with the same tx.
func TestWebhookConcurrentDuplicates(t *testing.T) {
	e := startEnv(t, func(c *Config) {
		c.Tenants[0].WebhookSecrets = []WebhookSecretConfig{{Provider: "stripe", Secret: testStripeSecret}}
	})
	l := newLedger(t, e, 1)
	l.call("webhook.route.set", map[string]any{"provider": "stripe", "eventType": "*", "contextId": l.contexts[0], "method": "record"}, nil)
	body := stripeBody("evt_concurrent", "invoice.paid")
	var wg sync.WaitGroup
	replies := make([]hookReply, 10)
	statuses := make([]int, 10)
	for i := range replies {
		header := stripeHeader(body, testStripeSecret, time.Now())
		wg.Go(func() { statuses[i], replies[i], _ = e.hook("/webhooks/stripe/"+e.A.Pub, header, body) })
	}
	wg.Wait()
	applied := 0
	for i, r := range replies {
		if statuses[i] != http.StatusOK || r.Result.TxID == "" || r.Result.TxID != replies[0].Result.TxID {
			t.Fatalf("reply %d: %d %+v (first %+v)", i, statuses[i], r, replies[0])
		}
		if r.Outcome == "applied" {
			applied++
		} else if r.Outcome != "duplicate" {
			t.Fatalf("reply %d outcome %s", i, r.Outcome)
		}
	}
	if applied != 1 {
		t.Fatalf("%d replies say applied, want 1", applied)
	}
	if n := l.count(0); n != 1 {
		t.Fatalf("ledger count %d after ten posts of one event, want 1", n)
	}
}

func idenfyHeader(body []byte, secret string) http.Header {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return http.Header{"Idenfy-Signature": {hex.EncodeToString(mac.Sum(nil))}}
}

func standardHeaders(t *testing.T, secret, id string, at time.Time, body []byte) http.Header {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.%s", id, at.Unix(), body)
	return http.Header{
		"Webhook-Id":        {id},
		"Webhook-Timestamp": {fmt.Sprint(at.Unix())},
		"Webhook-Signature": {"v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))},
	}
}

// TestWebhookIdenfyAndStandard: an iDenfy secret from the config file (through an
// environment variable) and a Standard Webhooks secret added by a method, each routed
// to its own ledger context.
func TestWebhookIdenfyAndStandard(t *testing.T) {
	t.Setenv("CG_TEST_IDENFY_SECRET", testIdenfySecret)
	e := startEnv(t, func(c *Config) {
		c.Tenants[0].WebhookSecrets = []WebhookSecretConfig{{Provider: "idenfy", SecretEnv: "CG_TEST_IDENFY_SECRET"}}
	})
	l := newLedger(t, e, 2)
	l.call("webhook.secret.add", map[string]any{"provider": "standard", "name": "billing", "secret": testStandardSecret}, nil)
	l.call("webhook.route.set", map[string]any{"provider": "idenfy", "eventType": "*", "contextId": l.contexts[0], "method": "record"}, nil)
	l.call("webhook.route.set", map[string]any{"provider": "standard", "name": "billing", "eventType": "invoice.*", "contextId": l.contexts[1], "method": "record"}, nil)

	kyc := []byte(`{"final":true,"status":{"overall":"APPROVED"},"scanRef":"scan-1","clientId":"client-1","finishTime":1700000100}`)
	ipath := "/webhooks/idenfy/" + e.A.Pub
	status, r, _ := e.hook(ipath, idenfyHeader(kyc, testIdenfySecret), kyc)
	if status != http.StatusOK || r.Outcome != "applied" || r.Type != "APPROVED" || !strings.HasPrefix(r.EventID, "scan-1.") {
		t.Fatalf("idenfy: %d %+v", status, r)
	}
	if status, r, _ := e.hook(ipath, idenfyHeader(kyc, testIdenfySecret), kyc); status != http.StatusOK || r.Outcome != "duplicate" {
		t.Fatalf("idenfy replay: %d %+v", status, r)
	}
	if status, r, _ := e.hook(ipath, idenfyHeader(kyc, "another-key"), kyc); status != http.StatusBadRequest || r.outcome() != "bad_signature" {
		t.Fatalf("idenfy wrong key: %d %+v", status, r)
	}

	inv := []byte(`{"type":"invoice.paid","timestamp":"2024-01-02T03:04:05Z","data":{"invoice":"in_1"}}`)
	spath := "/webhooks/standard/" + e.A.Pub + "/billing"
	now := time.Now()
	status, r, _ = e.hook(spath, standardHeaders(t, testStandardSecret, "msg_1", now, inv), inv)
	if status != http.StatusOK || r.Outcome != "applied" || r.EventID != "msg_1" || r.Type != "invoice.paid" {
		t.Fatalf("standard: %d %+v", status, r)
	}
	// A retry comes with a new timestamp and signature: a duplicate.
	if status, r, _ := e.hook(spath, standardHeaders(t, testStandardSecret, "msg_1", now.Add(2*time.Second), inv), inv); status != http.StatusOK || r.Outcome != "duplicate" {
		t.Fatalf("standard retry: %d %+v", status, r)
	}
	for _, tc := range []struct {
		name   string
		path   string
		header http.Header
		status int
		out    string
	}{
		{"stale", spath, standardHeaders(t, testStandardSecret, "msg_2", now.Add(-time.Hour), inv), 400, "bad_timestamp"},
		{"future", spath, standardHeaders(t, testStandardSecret, "msg_2", now.Add(time.Hour), inv), 400, "bad_timestamp"},
		{"another endpoint's name", "/webhooks/standard/" + e.A.Pub + "/crm", standardHeaders(t, testStandardSecret, "msg_2", now, inv), 400, "bad_signature"},
		{"no webhook-id", spath, http.Header{"Webhook-Timestamp": {"1"}, "Webhook-Signature": {"v1,x"}}, 400, "bad_signature"},
		{"a name no endpoint can have", "/webhooks/standard/" + e.A.Pub + "/" + strings.Repeat("n", 2000), standardHeaders(t, testStandardSecret, "msg_2", now, inv), 400, "bad_signature"},
	} {
		if status, r, _ := e.hook(tc.path, tc.header, inv); status != tc.status || r.outcome() != tc.out {
			t.Errorf("%s: %d %+v, want %d %s", tc.name, status, r, tc.status, tc.out)
		}
	}
	other := []byte(`{"type":"customer.created","data":{}}`)
	if status, r, _ := e.hook(spath, standardHeaders(t, testStandardSecret, "msg_3", now, other), other); status != http.StatusAccepted || r.Outcome != "no_route" {
		t.Fatalf("standard without a route: %d %+v", status, r)
	}
	if a, b := l.count(0), l.count(1); a != 1 || b != 1 {
		t.Fatalf("ledger counts %d and %d, want 1 and 1", a, b)
	}
	for _, d := range l.deliveries() {
		if name, _ := d["name"].(string); len(name) > 64 {
			t.Fatalf("the log keeps a %d-byte name", len(name))
		}
	}
}

// TestWebhookMethods: the owner's methods, their errors, and that only the owner of
// the tenant reaches them.
func TestWebhookMethods(t *testing.T) {
	e := startEnv(t, func(c *Config) {
		c.Tenants[0].WebhookSecrets = []WebhookSecretConfig{{Provider: "stripe", Secret: testStripeSecret}}
	})
	l := newLedger(t, e, 1)
	ctxID := l.contexts[0]
	admin, _ := e.login(e.A.Pub, e.AdminA)
	guest, _ := e.login(e.A.Pub, testutil.NewKey(t))
	ownerB, _ := e.login(e.B.Pub, e.B)

	var list struct {
		Secrets []struct {
			SecretID string `json:"secretId"`
			Source   string `json:"source"`
		} `json:"secrets"`
	}
	if err := admin.Call(ctxT(t), "webhook.secret.list", nil, &list); err != nil || len(list.Secrets) != 1 || list.Secrets[0].SecretID != "config-0" || list.Secrets[0].Source != "config" {
		t.Fatalf("admin webhook.secret.list = %+v, %v", list, err)
	}
	if err := ownerB.Call(ctxT(t), "webhook.secret.list", nil, &list); err != nil || len(list.Secrets) != 0 {
		t.Fatalf("tenant B sees %+v, %v", list, err)
	}
	for _, tc := range []struct {
		name   string
		c      *client.Client
		method string
		params any
		code   int
	}{
		{"guest lists secrets", guest, "webhook.secret.list", nil, rpc.CodeForbidden},
		{"guest adds a secret", guest, "webhook.secret.add", map[string]any{"provider": "stripe", "secret": "whsec_x"}, rpc.CodeForbidden},
		{"guest sets a route", guest, "webhook.route.set", map[string]any{"provider": "stripe", "eventType": "*", "contextId": ctxID, "method": "record"}, rpc.CodeForbidden},
		{"guest reads deliveries", guest, "webhook.deliveries", nil, rpc.CodeForbidden},
		{"unknown provider", admin, "webhook.secret.add", map[string]any{"provider": "paypal", "secret": "x"}, rpc.CodeInvalidParams},
		{"standard without name", admin, "webhook.secret.add", map[string]any{"provider": "standard", "secret": testStandardSecret}, rpc.CodeInvalidParams},
		{"standard secret not whsec", admin, "webhook.secret.add", map[string]any{"provider": "standard", "name": "a", "secret": "plain words"}, rpc.CodeInvalidParams},
		{"name on stripe", admin, "webhook.secret.add", map[string]any{"provider": "stripe", "name": "a", "secret": "whsec_x"}, rpc.CodeInvalidParams},
		{"remove a config secret", admin, "webhook.secret.remove", []string{"config-0"}, rpc.CodeInvalidParams},
		{"remove an unknown secret", admin, "webhook.secret.remove", []string{"0123456789abcdef01234567"}, rpc.CodeNotFound},
		{"route with * inside", admin, "webhook.route.set", map[string]any{"provider": "stripe", "eventType": "a*b", "contextId": ctxID, "method": "record"}, rpc.CodeInvalidParams},
		{"route to an unknown context", admin, "webhook.route.set", map[string]any{"provider": "stripe", "eventType": "*", "contextId": "nope", "method": "record"}, rpc.CodeNotFound},
		{"route to tenant A's context from B", ownerB, "webhook.route.set", map[string]any{"provider": "stripe", "eventType": "*", "contextId": ctxID, "method": "record"}, rpc.CodeNotFound},
		{"delete an unknown route", admin, "webhook.route.delete", []string{"0123456789abcdef"}, rpc.CodeNotFound},
		{"deliveries limit too large", admin, "webhook.deliveries", map[string]any{"limit": 501}, rpc.CodeInvalidParams},
		{"deliveries before not an id", admin, "webhook.deliveries", map[string]any{"before": "x"}, rpc.CodeInvalidParams},
	} {
		if err := tc.c.Call(ctxT(t), tc.method, tc.params, nil); rpcCode(err) != tc.code {
			t.Errorf("%s: %v, want %d", tc.name, err, tc.code)
		} else if err != nil && strings.Contains(err.Error(), "plain words") {
			t.Errorf("%s: the error holds the secret", tc.name)
		}
	}

	// Rotation: a second secret works beside the first; once the first is gone, only
	// the second does.
	var added struct {
		SecretID string `json:"secretId"`
	}
	const rolled = "whsec_circlegate_test_secret_0002"
	l.call("webhook.secret.add", map[string]any{"provider": "stripe", "secret": rolled}, &added)
	var route struct {
		RouteID string `json:"routeId"`
	}
	l.call("webhook.route.set", map[string]any{"provider": "stripe", "eventType": "*", "contextId": ctxID, "method": "record"}, &route)
	var again struct {
		RouteID string `json:"routeId"`
		Method  string `json:"method"`
	}
	l.call("webhook.route.set", map[string]any{"provider": "stripe", "eventType": "*", "contextId": ctxID, "method": "count"}, &again)
	if again.RouteID != route.RouteID || again.Method != "count" {
		t.Fatalf("setting a route again gave %+v, want it replaced (%s)", again, route.RouteID)
	}
	l.call("webhook.route.set", map[string]any{"provider": "stripe", "eventType": "*", "contextId": ctxID, "method": "record"}, nil)
	var routes struct {
		Routes []json.RawMessage `json:"routes"`
	}
	l.call("webhook.route.list", nil, &routes)
	if len(routes.Routes) != 1 {
		t.Fatalf("route list = %s", routes.Routes)
	}
	path := "/webhooks/stripe/" + e.A.Pub
	post := func(id, secret string) int {
		b := stripeBody(id, "a.b")
		status, _, _ := e.hook(path, stripeHeader(b, secret, time.Now()), b)
		return status
	}
	if post("evt_a", testStripeSecret) != 200 || post("evt_b", rolled) != 200 {
		t.Fatal("both secrets should verify")
	}
	if err := admin.Call(ctxT(t), "webhook.secret.remove", []string{added.SecretID}, nil); err != nil {
		t.Fatal(err)
	}
	if s := post("evt_c", rolled); s != http.StatusBadRequest {
		t.Fatalf("a removed secret verified: %d", s)
	}
	// Without its route an event is accepted and nothing runs.
	l.call("webhook.route.delete", []string{route.RouteID}, nil)
	if s := post("evt_d", testStripeSecret); s != http.StatusAccepted {
		t.Fatalf("after route.delete: %d", s)
	}
	if n := l.count(0); n != 2 {
		t.Fatalf("ledger count %d, want 2", n)
	}
}

// TestWebhookFailures: a route to a method the app lacks answers 422 and changes
// nothing; a full queue answers 503 with Retry-After and runs nothing.
func TestWebhookFailures(t *testing.T) {
	e := startEnv(t, func(c *Config) {
		c.Tenants[0].WebhookSecrets = []WebhookSecretConfig{{Provider: "stripe", Secret: testStripeSecret}}
		c.Execution.Workers = 1
		c.Execution.Queue.Capacity = 1
		c.Execution.Limits.Timeout = 2 * time.Second
	})
	owner, _ := e.login(e.A.Pub, e.A)
	wasm := testapps.BuildWAT(t, "../execution/testdata/hostile.wat")
	var app appInfo
	if err := owner.Call(ctxT(t), "app.install", map[string]any{"wasm": base64.StdEncoding.EncodeToString(wasm)}, &app); err != nil {
		t.Fatal(err)
	}
	busy := createContext(t, owner, map[string]any{"appId": app.AppID})
	target := createContext(t, owner, map[string]any{"appId": app.AppID})
	set := func(typ, method string) {
		if err := owner.Call(ctxT(t), "webhook.route.set", map[string]any{"provider": "stripe", "eventType": typ, "contextId": target.ContextID, "method": method}, nil); err != nil {
			t.Fatal(err)
		}
	}
	set("missing.*", "no_such_method")
	set("trap.*", "write_then_trap")
	set("ok.*", "ok")
	path := "/webhooks/stripe/" + e.A.Pub
	for typ, code := range map[string]int{"missing.x": rpc.CodeInvalidParams, "trap.x": rpc.CodeExecution} {
		b := stripeBody("evt_"+typ, typ)
		status, r, _ := e.hook(path, stripeHeader(b, testStripeSecret, time.Now()), b)
		if status != http.StatusUnprocessableEntity || r.outcome() != "failed" || r.Error.Code != code {
			t.Fatalf("%s: %d %+v, want 422 failed with %d", typ, status, r, code)
		}
	}
	go func() {
		_ = owner.Call(ctxT(t), "mutate", map[string]any{"contextId": busy.ContextID, "method": "loop"}, nil)
	}()
	q := e.g.Queue.(*execution.MemoryQueue)
	testutil.CheckFor(t, 5*time.Second, func() error {
		if q.Len() != 1 {
			return fmt.Errorf("queue holds %d jobs", q.Len())
		}
		return nil
	})
	b := stripeBody("evt_ok", "ok.x")
	status, r, header := e.hook(path, stripeHeader(b, testStripeSecret, time.Now()), b)
	if status != http.StatusServiceUnavailable || r.outcome() != "overloaded" || header.Get("Retry-After") == "" {
		t.Fatalf("queue full: %d %+v Retry-After %q", status, r, header.Get("Retry-After"))
	}
	var ci contextInfo
	if err := owner.Call(ctxT(t), "context.get", []string{target.ContextID}, &ci); err != nil || ci.Seq != 0 {
		t.Fatalf("a refused or failed delivery ran: seq %d, %v", ci.Seq, err)
	}
}

// TestWebhookDeliveryLogBound: the log keeps about the newest max_deliveries entries.
func TestWebhookDeliveryLogBound(t *testing.T) {
	e := startEnv(t, func(c *Config) {
		c.Webhooks.MaxDeliveries = 20
		c.Tenants[0].WebhookSecrets = []WebhookSecretConfig{{Provider: "stripe", Secret: testStripeSecret}}
	})
	l := newLedger(t, e, 0)
	const posts = 45
	for i := range posts {
		b := stripeBody(fmt.Sprintf("evt_%02d", i), "unrouted")
		if status, r, _ := e.hook("/webhooks/stripe/"+e.A.Pub, stripeHeader(b, testStripeSecret, time.Now()), b); status != http.StatusAccepted {
			t.Fatalf("post %d: %d %+v", i, status, r)
		}
	}
	log := l.deliveries()
	// Pruned every max/10 = 2 writes down to 20: at most 21 entries remain.
	if len(log) < 20 || len(log) > 22 {
		t.Fatalf("the log holds %d entries, want 20 to 22", len(log))
	}
	for i, d := range log {
		if want := fmt.Sprintf("evt_%02d", posts-1-i); d["eventId"] != want {
			t.Fatalf("entry %d is %v, want %s: the newest are kept, newest first", i, d["eventId"], want)
		}
	}
}

// TestLedgerRecord: record finds the top-level id wherever it is and however it is
// escaped, keeps the args as they came, and counts an id once.
func TestLedgerRecord(t *testing.T) {
	e := startEnv(t)
	l := newLedger(t, e, 1)
	record := func(args string) (txResult, error) {
		var tx txResult
		err := l.owner.Call(ctxT(t), "mutate", map[string]any{"contextId": l.contexts[0], "method": "record", "args": json.RawMessage(args)}, &tx)
		return tx, err
	}
	for _, tc := range []struct {
		args, id string
	}{
		{`{"provider":"stripe","id":"evt_1","type":"a","created":1,"data":{"id":"inner"}}`, "evt_1"},
		{`{"data":{"id":"inner","list":[{"id":"x"},"}"]},"note":"\"id\":\"fake\"","id":"evt_2"}`, "evt_2"},
		{`{"id":"evt_\u00e9\"3\""}`, "evt_é\"3\""},
		{` { "created" : 5 , "id" : "evt_4" } `, "evt_4"},
	} {
		tx, err := record(tc.args)
		var out struct {
			ID       string `json:"id"`
			Recorded bool   `json:"recorded"`
		}
		if err == nil {
			err = json.Unmarshal(tx.Output, &out)
		}
		if err != nil || out.ID != tc.id || !out.Recorded {
			t.Fatalf("record %s = %s, %v; want id %q", tc.args, tx.Output, err, tc.id)
		}
		var got struct {
			Output json.RawMessage `json:"output"`
		}
		l.call("query", map[string]any{"contextId": l.contexts[0], "method": "get", "args": map[string]string{"id": tc.id}}, &got)
		if !jsonEqual(got.Output, []byte(tc.args)) {
			t.Fatalf("get %q = %s, want %s", tc.id, got.Output, tc.args)
		}
	}
	if tx, err := record(`{"id":"evt_1","data":"again"}`); err != nil || !strings.Contains(string(tx.Output), `"recorded":false`) {
		t.Fatalf("recording evt_1 again = %s, %v", tx.Output, err)
	}
	for _, bad := range []string{`{"data":{"id":"inner"}}`, `{"id":5}`, `["id","x"]`, `"id"`} {
		if _, err := record(bad); rpcCode(err) != rpc.CodeExecution {
			t.Errorf("record %s: %v, want an execution error", bad, err)
		}
	}
	if n := l.count(0); n != 4 {
		t.Fatalf("count %d, want 4", n)
	}
}

// TestWebhookSecretsNeverLogged: neither the gateway's log (at debug level) nor a
// method result nor an error shows a secret, whatever happens to the deliveries.
func TestWebhookSecretsNeverLogged(t *testing.T) {
	var logs syncBuffer
	e := startEnvLog(t, &logs, func(c *Config) {
		c.Tenants[0].WebhookSecrets = []WebhookSecretConfig{{Provider: "stripe", Secret: testStripeSecret}}
	})
	l := newLedger(t, e, 1)
	var results []json.RawMessage
	call := func(method string, params any) {
		var raw json.RawMessage
		err := l.owner.Call(ctxT(t), method, params, &raw)
		if err != nil {
			raw, _ = json.Marshal(err.Error())
		}
		results = append(results, raw)
	}
	call("webhook.secret.add", map[string]any{"provider": "idenfy", "secret": testIdenfySecret})
	call("webhook.secret.add", map[string]any{"provider": "standard", "name": "x", "secret": testStandardSecret})
	call("webhook.secret.add", map[string]any{"provider": "standard", "name": "x", "secret": "whsec_" + testIdenfySecret}) // refused
	call("webhook.route.set", map[string]any{"provider": "stripe", "eventType": "*", "contextId": l.contexts[0], "method": "record"})
	call("webhook.route.set", map[string]any{"provider": "idenfy", "eventType": "*", "contextId": l.contexts[0], "method": "no_such_method"})
	body := stripeBody("evt_1", "a")
	for _, h := range []http.Header{stripeHeader(body, testStripeSecret, time.Now()), stripeHeader(body, "whsec_wrong", time.Now())} {
		_, r, _ := e.hook("/webhooks/stripe/"+e.A.Pub, h, body)
		b, _ := json.Marshal(r)
		results = append(results, b)
	}
	kyc := []byte(`{"scanRef":"s"}`)
	_, r, _ := e.hook("/webhooks/idenfy/"+e.A.Pub, idenfyHeader(kyc, testIdenfySecret), kyc)
	if r.outcome() != "failed" {
		t.Fatalf("idenfy to a missing method: %+v", r)
	}
	call("webhook.secret.list", nil)
	call("webhook.deliveries", nil)
	call("webhook.route.list", nil)
	all := logs.String()
	for _, r := range results {
		all += "\n" + string(r)
	}
	for _, secret := range []string{testStripeSecret, testIdenfySecret, testStandardSecret, strings.TrimPrefix(testStandardSecret, "whsec_")} {
		if strings.Contains(all, secret) {
			t.Fatalf("a secret shows in the logs or results:\n%s", all)
		}
	}
	if !strings.Contains(logs.String(), "webhook secret added") {
		t.Fatal("the log was not captured")
	}
}

package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
)

const (
	stripeSecret = "whsec_test_secret_one_0123456789"
	stripeOther  = "whsec_test_secret_two_0123456789"
)

func stripeEvent(id, typ, apiVersion string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"object":"event","api_version":%q,"created":1700000000,"type":%q,"data":{"object":{"id":"pi_1","object":"payment_intent","amount":2000}}}`, id, apiVersion, typ)
}

// signStripe signs body at t with stripe-go's own test helper.
func signStripe(body []byte, secret string, t time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: t}).Header
}

// outcomeOf returns the outcome of a *Rejection, "" for nil and "?" for other errors.
func outcomeOf(err error) string {
	if err == nil {
		return ""
	}
	var r *Rejection
	if errors.As(err, &r) {
		return r.Outcome
	}
	return "?"
}

func TestVerifyStripe(t *testing.T) {
	now := time.Now()
	cfg := Config{}.WithDefaults().Stripe
	body := stripeEvent("evt_1", "payment_intent.succeeded", "2020-08-27")
	other := stripeEvent("evt_1", "payment_intent.succeeded", stripe.APIVersion)

	// The same signature computed by hand: HMAC-SHA256(secret, "<t>.<body>"), hex.
	mac := hmac.New(sha256.New, []byte(stripeSecret))
	fmt.Fprintf(mac, "%d.%s", now.Unix(), body)
	byHand := fmt.Sprintf("t=%d,v1=%s", now.Unix(), hex.EncodeToString(mac.Sum(nil)))
	twoSigs := signStripe(body, stripeOther, now) + ",v1=" + hex.EncodeToString(webhook.ComputeSignature(now, body, stripeSecret))

	for _, tc := range []struct {
		name    string
		body    []byte
		header  string
		secrets []string
		cfg     StripeConfig
		want    string // outcome; "" = verified
	}{
		{"signed by stripe-go", body, signStripe(body, stripeSecret, now), []string{stripeSecret}, cfg, ""},
		{"signed by hand", body, byHand, []string{stripeSecret}, cfg, ""},
		{"second of two secrets (rotation)", body, signStripe(body, stripeSecret, now), []string{stripeOther, stripeSecret}, cfg, ""},
		{"second of two signatures (Stripe rolling)", body, twoSigs, []string{stripeSecret}, cfg, ""},
		{"wrong secret", body, signStripe(body, stripeOther, now), []string{stripeSecret}, cfg, OutcomeBadSignature},
		{"tampered body", []byte(strings.Replace(string(body), "2000", "9000", 1)), signStripe(body, stripeSecret, now), []string{stripeSecret}, cfg, OutcomeBadSignature},
		{"no secret configured", body, signStripe(body, stripeSecret, now), nil, cfg, OutcomeBadSignature},
		{"missing header", body, "", []string{stripeSecret}, cfg, OutcomeBadSignature},
		{"malformed header", body, "garbage", []string{stripeSecret}, cfg, OutcomeBadSignature},
		{"no timestamp", body, "v1=" + strings.Repeat("ab", 32), []string{stripeSecret}, cfg, OutcomeBadSignature},
		{"no v1 signature", body, fmt.Sprintf("t=%d,v0=abcd", now.Unix()), []string{stripeSecret}, cfg, OutcomeBadSignature},
		{"stale timestamp", body, signStripe(body, stripeSecret, now.Add(-10*time.Minute)), []string{stripeSecret}, cfg, OutcomeBadTimestamp},
		{"future timestamp", body, signStripe(body, stripeSecret, now.Add(10*time.Minute)), []string{stripeSecret}, cfg, OutcomeBadTimestamp},
		{"slightly ahead (clock skew)", body, signStripe(body, stripeSecret, now.Add(time.Minute)), []string{stripeSecret}, cfg, ""},
		{"old within a longer tolerance", body, signStripe(body, stripeSecret, now.Add(-10*time.Minute)), []string{stripeSecret}, StripeConfig{Tolerance: time.Hour}, ""},
		{"not JSON", []byte("not json"), signStripe([]byte("not json"), stripeSecret, now), []string{stripeSecret}, cfg, OutcomeBadPayload},
		{"JSON without id", []byte(`{"type":"x"}`), signStripe([]byte(`{"type":"x"}`), stripeSecret, now), []string{stripeSecret}, cfg, OutcomeBadPayload},
		{"JSON null", []byte(`null`), signStripe([]byte(`null`), stripeSecret, now), []string{stripeSecret}, cfg, OutcomeBadPayload},
		{"other api_version, strict", body, signStripe(body, stripeSecret, now), []string{stripeSecret}, StripeConfig{Tolerance: cfg.Tolerance, StrictAPIVersion: true}, OutcomeBadPayload},
		{"stripe-go's api_version, strict", other, signStripe(other, stripeSecret, now), []string{stripeSecret}, StripeConfig{Tolerance: cfg.Tolerance, StrictAPIVersion: true}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := VerifyStripe(tc.body, tc.header, tc.secrets, tc.cfg, now)
			if got := outcomeOf(err); got != tc.want {
				t.Fatalf("outcome %q (%v), want %q", got, err, tc.want)
			}
			if tc.want != "" {
				return
			}
			if ev.Provider != Stripe || ev.ID != "evt_1" || ev.Type != "payment_intent.succeeded" || ev.Created != 1700000000 || string(ev.Data) != string(tc.body) {
				t.Fatalf("event = %+v", ev)
			}
		})
	}
}

// TestRejectionsHoldNoSecret: no message, whatever the input, contains a secret.
func TestRejectionsHoldNoSecret(t *testing.T) {
	now := time.Now()
	body := stripeEvent("evt_1", "x", "2020-08-27")
	secrets := []string{stripeSecret, stripeOther}
	stdSecret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	h := http.Header{}
	h.Set(StandardIDHeader, "msg_1")
	h.Set(StandardTimestampHeader, fmt.Sprint(now.Unix()))
	h.Set(StandardSignatureHeader, "v1,"+base64.StdEncoding.EncodeToString(make([]byte, 32)))
	var errsSeen []error
	for _, header := range []string{"", "garbage", signStripe(body, "whsec_wrong", now), signStripe(body, stripeSecret, now.Add(-time.Hour))} {
		_, err := VerifyStripe(body, header, secrets, StripeConfig{Tolerance: time.Minute, StrictAPIVersion: true}, now)
		errsSeen = append(errsSeen, err)
	}
	_, err := VerifyIdenfy(body, strings.Repeat("0", 64), secrets)
	errsSeen = append(errsSeen, err)
	_, err = VerifyStandard(body, h, []string{stdSecret}, time.Minute, now)
	errsSeen = append(errsSeen, err)
	for _, err := range errsSeen {
		if err == nil {
			t.Fatal("a bad request verified")
		}
		for _, s := range append(secrets, stdSecret, strings.TrimPrefix(stdSecret, "whsec_")) {
			if strings.Contains(err.Error(), s) {
				t.Fatalf("%q holds a secret", err)
			}
		}
	}
}

func idenfySign(body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

func TestVerifyIdenfy(t *testing.T) {
	const secret, other = "idenfy-signing-key-1", "idenfy-signing-key-2"
	body := []byte(`{"final":true,"platform":"PC","status":{"overall":"APPROVED","autoFace":"FACE_MATCH"},"scanRef":"scan-123","clientId":"c1","startTime":1700000000,"finishTime":1700000100}`)
	sum := sha256.Sum256(body)
	wantID := "scan-123." + hex.EncodeToString(sum[:])[:16]
	bare := []byte(`{"final":false}`)
	bareSum := sha256.Sum256(bare)
	for _, tc := range []struct {
		name      string
		body      []byte
		header    string
		secrets   []string
		want      string
		id, typ   string
		created   int64
		checkData bool
	}{
		{"signed", body, idenfySign(body, secret), []string{secret}, "", wantID, "APPROVED", 1700000100, true},
		{"upper-case hex, spaces", body, " " + strings.ToUpper(idenfySign(body, secret)) + " ", []string{secret}, "", wantID, "APPROVED", 1700000100, false},
		{"second secret (rotation)", body, idenfySign(body, other), []string{secret, other}, "", wantID, "APPROVED", 1700000100, false},
		{"no scanRef, no status", bare, idenfySign(bare, secret), []string{secret}, "", hex.EncodeToString(bareSum[:])[:32], "callback", 0, false},
		{"wrong secret", body, idenfySign(body, other), []string{secret}, OutcomeBadSignature, "", "", 0, false},
		{"tampered body", []byte(strings.Replace(string(body), "APPROVED", "DENIED", 1)), idenfySign(body, secret), []string{secret}, OutcomeBadSignature, "", "", 0, false},
		{"missing header", body, "", []string{secret}, OutcomeBadSignature, "", "", 0, false},
		{"not hex", body, strings.Repeat("zz", 32), []string{secret}, OutcomeBadSignature, "", "", 0, false},
		{"too short", body, idenfySign(body, secret)[:62], []string{secret}, OutcomeBadSignature, "", "", 0, false},
		{"no secret configured", body, idenfySign(body, secret), nil, OutcomeBadSignature, "", "", 0, false},
		{"not JSON", []byte("scanRef=1"), idenfySign([]byte("scanRef=1"), secret), []string{secret}, OutcomeBadPayload, "", "", 0, false},
		{"JSON array", []byte(`[1]`), idenfySign([]byte(`[1]`), secret), []string{secret}, OutcomeBadPayload, "", "", 0, false},
		{"scanRef not a string", []byte(`{"scanRef":1}`), idenfySign([]byte(`{"scanRef":1}`), secret), []string{secret}, OutcomeBadPayload, "", "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := VerifyIdenfy(tc.body, tc.header, tc.secrets)
			if got := outcomeOf(err); got != tc.want {
				t.Fatalf("outcome %q (%v), want %q", got, err, tc.want)
			}
			if tc.want != "" {
				return
			}
			if ev.Provider != Idenfy || ev.ID != tc.id || ev.Type != tc.typ || ev.Created != tc.created {
				t.Fatalf("event = %+v, want id %s type %s created %d", ev, tc.id, tc.typ, tc.created)
			}
			if tc.checkData && string(ev.Data) != string(tc.body) {
				t.Fatalf("data = %s", ev.Data)
			}
		})
	}
}

// The example of the Standard Webhooks specification (and of Svix's documentation).
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specBody      = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func standardHeader(id string, ts int64, sig string) http.Header {
	h := http.Header{}
	h.Set(StandardIDHeader, id)
	h.Set(StandardTimestampHeader, fmt.Sprint(ts))
	h.Set(StandardSignatureHeader, sig)
	return h
}

// signStandard computes a v1 signature by hand.
func signStandard(t *testing.T, secret, id string, ts int64, body []byte) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.%s", id, ts, body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func TestVerifyStandard(t *testing.T) {
	specNow := time.Unix(specTimestamp, 0)
	otherSecret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("another key of 24+ bytes!!"))
	if got := signStandard(t, specSecret, specID, specTimestamp, []byte(specBody)); got != specSignature {
		t.Fatalf("hand-computed signature %s, the specification has %s", got, specSignature)
	}
	now := time.Now()
	body := []byte(`{"type":"invoice.paid","timestamp":"2024-01-02T03:04:05Z","data":{"id":"inv_1"}}`)
	sign := func(secret string, ts int64, b []byte) http.Header {
		return standardHeader("msg_1", ts, signStandard(t, secret, "msg_1", ts, b))
	}
	multi := standardHeader("msg_1", now.Unix(), "v1a,AAAA v1,not-base64 v1,"+base64.StdEncoding.EncodeToString(make([]byte, 32))+" "+signStandard(t, specSecret, "msg_1", now.Unix(), body))
	missing := func(name string) http.Header {
		h := sign(specSecret, now.Unix(), body)
		h.Del(name)
		return h
	}
	for _, tc := range []struct {
		name    string
		body    []byte
		header  http.Header
		secrets []string
		now     time.Time
		want    string
	}{
		{"the specification's example", []byte(specBody), standardHeader(specID, specTimestamp, specSignature), []string{specSecret}, specNow, ""},
		{"signed", body, sign(specSecret, now.Unix(), body), []string{specSecret}, now, ""},
		{"secret without whsec_", body, sign(specSecret, now.Unix(), body), []string{strings.TrimPrefix(specSecret, "whsec_")}, now, ""},
		{"second secret (rotation)", body, sign(otherSecret, now.Unix(), body), []string{specSecret, otherSecret}, now, ""},
		{"one good entry among others", body, multi, []string{specSecret}, now, ""},
		{"wrong secret", body, sign(otherSecret, now.Unix(), body), []string{specSecret}, now, OutcomeBadSignature},
		{"tampered body", []byte(strings.Replace(string(body), "inv_1", "inv_2", 1)), sign(specSecret, now.Unix(), body), []string{specSecret}, now, OutcomeBadSignature},
		{"stale timestamp", body, sign(specSecret, now.Add(-10*time.Minute).Unix(), body), []string{specSecret}, now, OutcomeBadTimestamp},
		{"future timestamp", body, sign(specSecret, now.Add(10*time.Minute).Unix(), body), []string{specSecret}, now, OutcomeBadTimestamp},
		{"malformed timestamp", body, standardHeader("msg_1", 0, "v1,x"), []string{specSecret}, now, OutcomeBadTimestamp},
		{"missing webhook-id", body, missing(StandardIDHeader), []string{specSecret}, now, OutcomeBadSignature},
		{"missing webhook-timestamp", body, missing(StandardTimestampHeader), []string{specSecret}, now, OutcomeBadSignature},
		{"missing webhook-signature", body, missing(StandardSignatureHeader), []string{specSecret}, now, OutcomeBadSignature},
		{"only a v1a entry", body, standardHeader("msg_1", now.Unix(), "v1a,AAAA"), []string{specSecret}, now, OutcomeBadSignature},
		{"no secret configured", body, sign(specSecret, now.Unix(), body), nil, now, OutcomeBadSignature},
		{"not JSON", []byte("hello"), sign(specSecret, now.Unix(), []byte("hello")), []string{specSecret}, now, OutcomeBadPayload},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyStandard(tc.body, tc.header, tc.secrets, 5*time.Minute, tc.now)
			if got := outcomeOf(err); got != tc.want {
				t.Fatalf("outcome %q (%v), want %q", got, err, tc.want)
			}
		})
	}
	ev, err := VerifyStandard(body, sign(specSecret, now.Unix(), body), []string{specSecret}, 5*time.Minute, now)
	if err != nil || ev.Provider != Standard || ev.ID != "msg_1" || ev.Type != "invoice.paid" || ev.Created != 1704164645 || string(ev.Data) != string(body) {
		t.Fatalf("event = %+v, %v", ev, err)
	}
	// Without a payload timestamp, created is webhook-timestamp.
	ev, err = VerifyStandard([]byte(specBody), standardHeader(specID, specTimestamp, specSignature), []string{specSecret}, 5*time.Minute, specNow)
	if err != nil || ev.ID != specID || ev.Type != "" || ev.Created != specTimestamp {
		t.Fatalf("spec event = %+v, %v", ev, err)
	}
}

func TestCheckSecret(t *testing.T) {
	for _, tc := range []struct {
		p            Provider
		name, secret string
		param        string // "" = valid
	}{
		{Stripe, "", "whsec_abc", ""},
		{Idenfy, "", "key", ""},
		{Standard, "billing", specSecret, ""},
		{"paypal", "", "x", "provider"},
		{Stripe, "a", "whsec_abc", "name"},
		{Standard, "", specSecret, "name"},
		{Standard, "a/b", specSecret, "name"},
		{Stripe, "", "", "secret"},
		{Stripe, "", " whsec_abc", "secret"},
		{Stripe, "", strings.Repeat("x", 1025), "secret"},
		{Standard, "a", "whsec_!!", "secret"},
		{Standard, "a", "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 16)), "secret"},
	} {
		err := CheckSecret(tc.p, tc.name, tc.secret)
		got := ""
		if err != nil {
			var e *errs.Error
			if errors.As(err, &e) {
				got = e.Param
			}
			if strings.Contains(err.Error(), tc.secret) && tc.secret != "" {
				t.Errorf("%v holds the secret", err)
			}
		}
		if got != tc.param {
			t.Errorf("CheckSecret(%s, %q, %.20q) = %v, want param %q", tc.p, tc.name, tc.secret, err, tc.param)
		}
	}
}

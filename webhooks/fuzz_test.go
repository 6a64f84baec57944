package webhooks

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
)

// fuzzNow is the fixed clock of the fuzzers.
var fuzzNow = time.Unix(1700000000, 0)

// FuzzStripeSignature checks the Stripe-Signature reading against stripe-go's: the
// timestamp parser accepts exactly the headers stripe-go can read that carry a t=, and
// reads the same timestamp; and VerifyStripe accepts only a header holding the right
// signature.
func FuzzStripeSignature(f *testing.F) {
	body := stripeEvent("evt_1", "a.b", "2020-08-27")
	f.Add(signStripe(body, stripeSecret, fuzzNow), body)
	f.Add(fmt.Sprintf("t=%d,v1=00,v0=11,x=y", fuzzNow.Unix()), body)
	f.Add("t=1,t=2,v1=zz", []byte(`{}`))
	f.Add("t==1", []byte(`{"id":"x"}`))
	f.Add(",", []byte(nil))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		verr := webhook.ValidatePayloadIgnoringTolerance(body, header, stripeSecret)
		unreadable := errors.Is(verr, webhook.ErrInvalidHeader) || errors.Is(verr, webhook.ErrNotSigned)
		ts, ok := stripeTimestamp(header)
		switch {
		case ok && unreadable:
			t.Fatalf("stripeTimestamp reads %q, stripe-go does not (%v)", header, verr)
		case !ok && !unreadable && hasStripeT(header):
			t.Fatalf("stripeTimestamp refuses %q, which stripe-go reads", header)
		case ok:
			// The same timestamp: a signature made for ts verifies in stripe-go.
			signed := header + ",v1=" + hex.EncodeToString(webhook.ComputeSignature(time.Unix(ts, 0), body, stripeSecret))
			if err := webhook.ValidatePayloadIgnoringTolerance(body, signed, stripeSecret); err != nil {
				t.Fatalf("stripe-go reads another timestamp than %d in %q: %v", ts, header, err)
			}
		}
		ev, err := VerifyStripe(body, header, []string{stripeSecret}, StripeConfig{Tolerance: 100 * 365 * 24 * time.Hour}, fuzzNow)
		if err == nil {
			want := "v1=" + hex.EncodeToString(webhook.ComputeSignature(time.Unix(ts, 0), body, stripeSecret))
			if !strings.Contains(strings.ToLower(header), want) || ev.ID == "" {
				t.Fatalf("verified %q without its signature (event %+v)", header, ev)
			}
		}
	})
}

// FuzzEventArgs checks that an event's args are json.Marshal's encoding, byte for byte.
func FuzzEventArgs(f *testing.F) {
	f.Add("stripe", "evt_1", "a.b", int64(1700000000), []byte(`{"a": [1, 2], "b": "<&>"}`))
	f.Add("standard", "msg \"1\"", "t\u2028", int64(-1), []byte("null"))
	f.Add("idenfy", "", "", int64(0), []byte(" {\n\t\"x\" : \"\u00e9\\u2028\xe2\x80\xa8\" } "))
	f.Fuzz(func(t *testing.T, provider, id, typ string, created int64, data []byte) {
		ev := Event{Provider: Provider(provider), ID: id, Type: typ, Created: created, Data: data}
		want, werr := json.Marshal(&ev)
		got, err := ev.args()
		if (err == nil) != (werr == nil) || (err == nil && !bytes.Equal(got, want)) {
			t.Fatalf("args %s (%v); json.Marshal %s (%v)", got, err, want, werr)
		}
	})
}

// hasStripeT reports whether a header has a pair with the key t.
func hasStripeT(header string) bool {
	for pair := range strings.SplitSeq(header, ",") {
		if k, _, _ := strings.Cut(pair, "="); k == "t" {
			return true
		}
	}
	return false
}

// FuzzIdenfySignature checks that the Idenfy-Signature parser takes only 64 hex digits
// and that only the HMAC of the body verifies.
func FuzzIdenfySignature(f *testing.F) {
	const secret = "idenfy-key"
	body := []byte(`{"scanRef":"s1","status":{"overall":"APPROVED"}}`)
	f.Add(idenfySign(body, secret), body)
	f.Add(strings.ToUpper(idenfySign(body, secret)), body)
	f.Add(" 00 ", []byte("x"))
	f.Add(strings.Repeat("g", 64), []byte(nil))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		want := idenfySign(body, secret)
		if sig, ok := parseIdenfySignature(header); ok {
			if len(sig) != sha256.Size || hex.EncodeToString(sig) != strings.ToLower(strings.TrimSpace(header)) {
				t.Fatalf("parsed %q as %x", header, sig)
			}
		}
		_, err := VerifyIdenfy(body, header, []string{secret})
		if outcomeOf(err) != OutcomeBadSignature && strings.ToLower(strings.TrimSpace(header)) != want {
			t.Fatalf("verified %q, want the signature %s (%v)", header, want, err)
		}
	})
}

// FuzzStandardSignature checks that the webhook-signature parser returns only 32-byte
// v1 signatures written in the header, and that only the HMAC of id.timestamp.body
// verifies.
func FuzzStandardSignature(f *testing.F) {
	body := []byte(`{"type":"a.b"}`)
	key, _ := decodeStandardSecret(specSecret)
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "msg_1.%d.%s", fuzzNow.Unix(), body)
	good := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	f.Add(good, body)
	f.Add("v1a,AAAA "+good+" v2,x", body)
	f.Add("v1,,,  v1", []byte("{}"))
	f.Add("v1,"+strings.Repeat("A", 43)+"=", []byte(nil))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		for _, sig := range parseStandardSignatures(header) {
			if len(sig) != sha256.Size || !strings.Contains(header, "v1,"+base64.StdEncoding.EncodeToString(sig)) {
				t.Fatalf("parsed %x out of %q", sig, header)
			}
		}
		h := standardHeader("msg_1", fuzzNow.Unix(), header)
		_, err := VerifyStandard(body, h, []string{specSecret}, time.Minute, fuzzNow)
		if o := outcomeOf(err); o == OutcomeBadSignature || o == OutcomeBadTimestamp {
			return
		}
		mac := hmac.New(sha256.New, key)
		fmt.Fprintf(mac, "msg_1.%d.%s", fuzzNow.Unix(), body)
		if !strings.Contains(header, base64.StdEncoding.EncodeToString(mac.Sum(nil))) {
			t.Fatalf("verified %q without the signature of the body (%v)", header, err)
		}
	})
}

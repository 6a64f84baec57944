package webhooks

import (
	"net/http"
	"testing"
	"time"
)

// The verifiers alone, on a small event, with the right secret second of two (a
// secret being rolled): what a delivery costs before it is routed and queued.

func BenchmarkVerifyStripe(b *testing.B) {
	now := time.Now()
	body := stripeEvent("evt_1", "payment_intent.succeeded", "2020-08-27")
	header := signStripe(body, stripeSecret, now)
	secrets := []string{stripeOther, stripeSecret}
	cfg := Config{}.WithDefaults().Stripe
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := VerifyStripe(body, header, secrets, cfg, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyIdenfy(b *testing.B) {
	body := []byte(`{"final":true,"status":{"overall":"APPROVED"},"scanRef":"scan-123","finishTime":1700000100}`)
	header := idenfySign(body, "key-2")
	secrets := []string{"key-1", "key-2"}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := VerifyIdenfy(body, header, secrets); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyStandard(b *testing.B) {
	now := time.Unix(specTimestamp, 0)
	body := []byte(specBody)
	h := http.Header{}
	h.Set(StandardIDHeader, specID)
	h.Set(StandardTimestampHeader, "1614265330")
	h.Set(StandardSignatureHeader, specSignature)
	secrets := []string{"whsec_" + "QW5vdGhlciBrZXkgb2YgMjQrIGJ5dGVzISE=", specSecret}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := VerifyStandard(body, h, secrets, 5*time.Minute, now); err != nil {
			b.Fatal(err)
		}
	}
}

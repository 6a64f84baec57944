package webhooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
)

// StripeSignatureHeader is the header Stripe signs with: "t=<unix>,v1=<hex>[,v1=...]".
const StripeSignatureHeader = "Stripe-Signature"

// VerifyStripe checks a Stripe event's signature with stripe-go's
// ValidatePayloadWithTolerance against each secret in turn (several at once while a
// secret is rolled) and returns the event. A signed timestamp older than
// cfg.Tolerance is refused (by stripe-go), and so is one more than cfg.Tolerance in
// the future (here: stripe-go does not check that). The body must be an event that
// stripe-go's ConstructEvent would decode (stripeEnvelope); an api_version other
// than stripe-go's is refused only with cfg.StrictAPIVersion. The error is a
// *Rejection.
func VerifyStripe(body []byte, header string, secrets []string, cfg StripeConfig, now time.Time) (Event, error) {
	if header == "" {
		return Event{}, reject(OutcomeBadSignature, "missing %s header", StripeSignatureHeader)
	}
	ts, ok := stripeTimestamp(header)
	if !ok {
		return Event{}, reject(OutcomeBadSignature, "malformed %s header: want t=<unix seconds>,v1=<hex>", StripeSignatureHeader)
	}
	if ts > now.Add(cfg.Tolerance).Unix() {
		return Event{}, reject(OutcomeBadTimestamp, "the signed timestamp is more than %s in the future", cfg.Tolerance)
	}
	if len(secrets) == 0 {
		return Event{}, reject(OutcomeBadSignature, "no stripe secret is configured for this tenant")
	}
	tolerance := cfg.Tolerance
	if tolerance == 0 {
		tolerance = webhook.DefaultTolerance // as ConstructEventWithOptions does
	}
	for _, secret := range secrets {
		err := webhook.ValidatePayloadWithTolerance(body, header, secret, tolerance)
		switch {
		case err == nil:
			return decodeStripe(body, cfg)
		case errors.Is(err, webhook.ErrNoValidSignature):
			continue // another secret may match
		case errors.Is(err, webhook.ErrTooOld):
			return Event{}, reject(OutcomeBadTimestamp, "the signed timestamp is more than %s old", cfg.Tolerance)
		default: // ErrNotSigned, ErrInvalidHeader
			return Event{}, reject(OutcomeBadSignature, "malformed %s header", StripeSignatureHeader)
		}
	}
	return Event{}, reject(OutcomeBadSignature, "no valid signature for any stripe secret of this tenant")
}

// stripeEnvelope is what VerifyStripe decodes of a Stripe event: the fields of
// stripe-go's Event, with their types, so that a body stripe-go's ConstructEvent
// refuses is refused here too (FuzzStripeDecode checks it), without building
// data.object and data.previous_attributes as maps (most of ConstructEvent's 7 us).
type stripeEnvelope struct {
	Account    string `json:"account"`
	APIVersion string `json:"api_version"`
	Created    int64  `json:"created"`
	Data       *struct {
		PreviousAttributes map[string]json.RawMessage `json:"previous_attributes"`
		Object             json.RawMessage            `json:"object"`
	} `json:"data"`
	ID              string `json:"id"`
	Livemode        bool   `json:"livemode"`
	Object          string `json:"object"`
	PendingWebhooks int64  `json:"pending_webhooks"`
	Request         *struct {
		ID             string `json:"id"`
		IdempotencyKey string `json:"idempotency_key"`
	} `json:"request"`
	Type string `json:"type"`
}

// decodeStripe reads a verified body as a Stripe event.
func decodeStripe(body []byte, cfg StripeConfig) (Event, error) {
	var e stripeEnvelope
	if err := json.Unmarshal(body, &e); err != nil {
		return Event{}, stripePayloadError(body, cfg)
	}
	if e.Data != nil && !jsonObjectOrNull(e.Data.Object) {
		// stripe-go decodes data.object into a map: it must be there, an object or null.
		return Event{}, reject(OutcomeBadPayload, "the body is not a Stripe event")
	}
	if cfg.StrictAPIVersion && e.APIVersion != stripe.APIVersion {
		return Event{}, stripePayloadError(body, cfg)
	}
	// The body decoded into a struct, so it is a JSON object (or null, which has no id).
	out := Event{Provider: Stripe, ID: e.ID, Type: e.Type, Created: e.Created, Data: body}
	return out, checkEvent(&out)
}

// jsonObjectOrNull reports whether v, valid JSON or empty, is an object or null.
func jsonObjectOrNull(v json.RawMessage) bool {
	v = bytes.TrimLeft(v, " \t\r\n")
	return len(v) > 0 && (v[0] == '{' || v[0] == 'n')
}

// stripePayloadError explains why ConstructEventWithOptions refused a signed body.
func stripePayloadError(body []byte, cfg StripeConfig) error {
	var v struct {
		APIVersion string `json:"api_version"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return reject(OutcomeBadPayload, "the body is not a JSON Stripe event")
	}
	if cfg.StrictAPIVersion && v.APIVersion != stripe.APIVersion {
		return reject(OutcomeBadPayload, "the event's api_version %q is not %q (webhooks.stripe.strict_api_version is on)", v.APIVersion, stripe.APIVersion)
	}
	return reject(OutcomeBadPayload, "the body is not a Stripe event")
}

// stripeTimestamp returns the t= value of a Stripe-Signature header, read the way
// stripe-go reads it: comma-separated key=value pairs, the last t wins, and a pair that
// is not exactly one key and one value makes the header malformed.
func stripeTimestamp(header string) (int64, bool) {
	var ts int64
	found := false
	for pair := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || strings.Contains(v, "=") {
			return 0, false
		}
		if k == "t" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, false
			}
			ts, found = n, true
		}
	}
	return ts, found
}

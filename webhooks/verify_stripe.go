package webhooks

import (
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

// VerifyStripe checks a Stripe event with stripe-go's ConstructEventWithOptions against
// each secret in turn (several at once while a secret is rolled) and returns the event.
// A signed timestamp older than cfg.Tolerance is refused (by stripe-go), and so is one
// more than cfg.Tolerance in the future (here: stripe-go does not check that). An
// api_version other than stripe-go's is refused only with cfg.StrictAPIVersion. The
// error is a *Rejection.
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
	opts := webhook.ConstructEventOptions{Tolerance: cfg.Tolerance, IgnoreAPIVersionMismatch: !cfg.StrictAPIVersion}
	for _, secret := range secrets {
		ev, err := webhook.ConstructEventWithOptions(body, header, secret, opts)
		switch {
		case err == nil:
			// stripe-go decoded the body into an event struct, so it is a JSON object
			// (or null, which has no id).
			out := Event{Provider: Stripe, ID: ev.ID, Type: string(ev.Type), Created: ev.Created, Data: body}
			return out, checkEvent(&out)
		case errors.Is(err, webhook.ErrNoValidSignature):
			continue // another secret may match
		case errors.Is(err, webhook.ErrTooOld):
			return Event{}, reject(OutcomeBadTimestamp, "the signed timestamp is more than %s old", cfg.Tolerance)
		case errors.Is(err, webhook.ErrNotSigned), errors.Is(err, webhook.ErrInvalidHeader):
			return Event{}, reject(OutcomeBadSignature, "malformed %s header", StripeSignatureHeader)
		default:
			// The signature matched; the body is not a usable event.
			return Event{}, stripePayloadError(body, cfg)
		}
	}
	return Event{}, reject(OutcomeBadSignature, "no valid signature for any stripe secret of this tenant")
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

package webhooks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/internal/jsonx"
)

// Provider names a sender of webhooks.
type Provider string

// The providers.
const (
	Stripe   Provider = "stripe"   // Stripe-Signature, verified by stripe-go
	Idenfy   Provider = "idenfy"   // Idenfy-Signature: hex HMAC-SHA256 of the body
	Standard Provider = "standard" // Standard Webhooks: webhook-id, -timestamp, -signature
)

// Providers lists every provider.
var Providers = []Provider{Stripe, Idenfy, Standard}

// ParseProvider checks a provider name given as a param.
func ParseProvider(s string) (Provider, error) {
	for _, p := range Providers {
		if string(p) == s {
			return p, nil
		}
	}
	return "", errs.Param("provider", "must be stripe, idenfy or standard")
}

// Event is a verified webhook event. It is also, encoded as JSON, the args the routed
// app method receives: {provider, id, type, created, data}.
type Event struct {
	Provider Provider `json:"provider"`
	// ID is the provider's event id: Stripe's event id, the webhook-id of a Standard
	// Webhook, and for iDenfy the scanRef and a digest of the body (see VerifyIdenfy).
	ID string `json:"id"`
	// Type is the event type routes match on.
	Type string `json:"type"`
	// Created is when the provider created the event, unix seconds (0 if unknown).
	Created int64 `json:"created"`
	// Data is the verified payload: the request body, a JSON object.
	Data json.RawMessage `json:"data"`
}

// args returns the event as the routed method's args: json.Marshal(ev), byte for
// byte (FuzzEventArgs checks it), without the reflective encoder: the body is
// compacted and HTML-escaped as Marshal does with a json.RawMessage.
func (ev *Event) args() ([]byte, error) {
	b := make([]byte, 0, 64+len(ev.Provider)+len(ev.ID)+len(ev.Type)+len(ev.Data))
	b = append(b, `{"provider":`...)
	b = appendJSONString(b, string(ev.Provider))
	b = append(b, `,"id":`...)
	b = appendJSONString(b, ev.ID)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, ev.Type)
	b = append(b, `,"created":`...)
	b = strconv.AppendInt(b, ev.Created, 10)
	b = append(b, `,"data":`...)
	if ev.Data == nil {
		b = append(b, "null"...)
	} else {
		buf := bytes.NewBuffer(b)
		var compact bytes.Buffer
		if err := json.Compact(&compact, ev.Data); err != nil {
			return nil, err
		}
		json.HTMLEscape(buf, compact.Bytes())
		b = buf.Bytes()
	}
	return append(b, '}'), nil
}

// appendJSONString appends s as json.Marshal writes it.
func appendJSONString(b []byte, s string) []byte {
	if out, ok := jsonx.AppendPlainString(b, s); ok {
		return out
	}
	q, _ := json.Marshal(s)
	return append(b, q...)
}

// maxEventIDBytes bounds an event id, so that "<provider>:<name>:<id>" stays well
// inside the 256-byte idempotency key limit.
const maxEventIDBytes = 180

// maxEventTypeBytes bounds an event type and a route's eventType pattern.
const maxEventTypeBytes = 200

// checkEvent checks the id and type taken from a verified payload.
func checkEvent(ev *Event) error {
	switch {
	case ev.ID == "":
		return reject(OutcomeBadPayload, "the event has no id")
	case len(ev.ID) > maxEventIDBytes || !printable(ev.ID):
		return reject(OutcomeBadPayload, "the event id must be 1 to %d printable bytes", maxEventIDBytes)
	case len(ev.Type) > maxEventTypeBytes || !printable(ev.Type):
		return reject(OutcomeBadPayload, "the event type must be at most %d printable bytes", maxEventTypeBytes)
	}
	return nil
}

// printable reports whether s is UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// jsonObject reports whether body is a JSON object.
func jsonObject(body []byte) bool {
	b := bytes.TrimLeft(body, " \t\r\n")
	return len(b) > 0 && b[0] == '{' && json.Valid(body)
}

// The outcomes of a delivery: the "outcome" field of its log entry and of its HTTP
// reply, and the outcome label of circlegate_webhook_deliveries_total.
const (
	OutcomeApplied       = "applied"        // 200: the mutation committed
	OutcomeDuplicate     = "duplicate"      // 200: the event was applied before; the first outcome
	OutcomeNoRoute       = "no_route"       // 202: verified, no route for its type; nothing ran
	OutcomeBadSignature  = "bad_signature"  // 400: signature header missing, malformed or no secret matches
	OutcomeBadTimestamp  = "bad_timestamp"  // 400: signed timestamp malformed, too old or in the future
	OutcomeBadPayload    = "bad_payload"    // 400: verified, but not a JSON object with an event id
	OutcomeTooLarge      = "too_large"      // 413: body over max_body_bytes
	OutcomeUnknownTenant = "unknown_tenant" // 404: no such tenant here (not logged: no tenant)
	OutcomeOverloaded    = "overloaded"     // 503: queue full or job timed out; retry
	OutcomeFailed        = "failed"         // 422: the routed mutation failed (app error, context gone)
	OutcomeError         = "error"          // 500: an internal error
)

// Rejection is why a delivery was refused: its outcome and a message that is safe to
// show the sender. It never holds a secret or a signature.
type Rejection struct {
	Outcome string
	Message string
}

func (r *Rejection) Error() string { return r.Message }

func reject(outcome, format string, args ...any) *Rejection {
	return &Rejection{Outcome: outcome, Message: fmt.Sprintf(format, args...)}
}

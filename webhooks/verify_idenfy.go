package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
)

// IdenfySignatureHeader carries the hex HMAC-SHA256 of the raw body under the
// tenant's iDenfy signing key.
const IdenfySignatureHeader = "Idenfy-Signature"

// idenfyBody is the part of an iDenfy callback an event is made of.
type idenfyBody struct {
	ScanRef string `json:"scanRef"`
	Status  struct {
		Overall string `json:"overall"`
	} `json:"status"`
	StartTime  json.RawMessage `json:"startTime"`
	FinishTime json.RawMessage `json:"finishTime"`
}

// VerifyIdenfy checks an Idenfy-Signature header (hex of HMAC-SHA256(secret, body),
// compared in constant time) against each secret in turn and returns the event:
//
//   - id: the callback's scanRef, a dot and the first 16 hex digits of the body's
//     SHA-256. iDenfy sends several callbacks for one verification (their bodies
//     differ) and retries a callback with the same body, so each callback applies once.
//     Without a scanRef the id is the first 32 hex digits of the digest.
//   - type: status.overall (APPROVED, DENIED, SUSPECTED, REVIEWING, EXPIRED, ...), or
//     "callback" when the body has none.
//   - created: finishTime, else startTime (unix seconds), else 0.
//
// The header carries no timestamp: a replayed callback is the same event and is
// deduplicated by its id. The error is a *Rejection.
func VerifyIdenfy(body []byte, header string, secrets []string) (Event, error) {
	if header == "" {
		return Event{}, reject(OutcomeBadSignature, "missing %s header", IdenfySignatureHeader)
	}
	sig, ok := parseIdenfySignature(header)
	if !ok {
		return Event{}, reject(OutcomeBadSignature, "malformed %s header: want 64 hex digits", IdenfySignatureHeader)
	}
	if len(secrets) == 0 {
		return Event{}, reject(OutcomeBadSignature, "no idenfy secret is configured for this tenant")
	}
	matched := false
	for _, secret := range secrets {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		if hmac.Equal(mac.Sum(nil), sig) {
			matched = true
			break
		}
	}
	if !matched {
		return Event{}, reject(OutcomeBadSignature, "no valid signature for any idenfy secret of this tenant")
	}
	if !jsonObject(body) {
		return Event{}, reject(OutcomeBadPayload, "the body is not a JSON object")
	}
	var b idenfyBody
	if err := json.Unmarshal(body, &b); err != nil {
		return Event{}, reject(OutcomeBadPayload, "the body is not an iDenfy callback: scanRef and status.overall must be strings")
	}
	sum := sha256.Sum256(body)
	digest := hex.EncodeToString(sum[:])
	ev := Event{Provider: Idenfy, ID: digest[:32], Type: b.Status.Overall, Data: body}
	if b.ScanRef != "" {
		ev.ID = b.ScanRef + "." + digest[:16]
	}
	if ev.Type == "" {
		ev.Type = "callback"
	}
	ev.Created = unixField(b.FinishTime)
	if ev.Created == 0 {
		ev.Created = unixField(b.StartTime)
	}
	return ev, checkEvent(&ev)
}

// parseIdenfySignature decodes the header: 64 hex digits, either case, surrounding
// spaces ignored.
func parseIdenfySignature(header string) ([]byte, bool) {
	h := strings.TrimSpace(header)
	if len(h) != 2*sha256.Size {
		return nil, false
	}
	sig, err := hex.DecodeString(h)
	return sig, err == nil
}

// unixField reads an integer JSON field; anything else is 0.
func unixField(raw json.RawMessage) int64 {
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

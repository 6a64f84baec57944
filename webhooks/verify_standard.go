package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/circlegate/circlegate/errs"
)

// The Standard Webhooks headers (https://www.standardwebhooks.com).
const (
	StandardIDHeader        = "webhook-id"
	StandardTimestampHeader = "webhook-timestamp"
	StandardSignatureHeader = "webhook-signature"
)

// standardSecretPrefix starts a Standard Webhooks secret: whsec_<base64 of the key>.
const standardSecretPrefix = "whsec_"

// decodeStandardSecret returns the key of a Standard Webhooks secret: "whsec_" (which
// may be left out) and the base64 of 24 to 64 random bytes.
func decodeStandardSecret(s string) ([]byte, error) {
	b64 := strings.TrimPrefix(s, standardSecretPrefix)
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		if key, err = base64.RawStdEncoding.DecodeString(b64); err != nil {
			return nil, errs.Param("secret", "must be whsec_ followed by base64")
		}
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, errs.Param("secret", "must encode 24 to 64 bytes, not %d", len(key))
	}
	return key, nil
}

// standardPayload is the part of a Standard Webhooks payload an event is made of.
type standardPayload struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
}

// VerifyStandard checks a Standard Webhook against each secret (whsec_<base64>) in
// turn: webhook-signature holds space-separated "v1,<base64 of HMAC-SHA256(key,
// id.timestamp.body)>" entries (other versions are ignored), and webhook-timestamp
// must lie within tolerance of now, in the past or the future. The event's id is
// webhook-id, its type the payload's "type" (may be empty), its created time the
// payload's RFC 3339 "timestamp", else webhook-timestamp. The error is a *Rejection.
func VerifyStandard(body []byte, h http.Header, secrets []string, tolerance time.Duration, now time.Time) (Event, error) {
	id, ts, sigHeader := h.Get(StandardIDHeader), h.Get(StandardTimestampHeader), h.Get(StandardSignatureHeader)
	for _, f := range []struct{ name, value string }{{StandardIDHeader, id}, {StandardTimestampHeader, ts}, {StandardSignatureHeader, sigHeader}} {
		if f.value == "" {
			return Event{}, reject(OutcomeBadSignature, "missing %s header", f.name)
		}
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return Event{}, reject(OutcomeBadTimestamp, "malformed %s header: want unix seconds", StandardTimestampHeader)
	}
	switch {
	case t < now.Add(-tolerance).Unix():
		return Event{}, reject(OutcomeBadTimestamp, "%s is more than %s old", StandardTimestampHeader, tolerance)
	case t > now.Add(tolerance).Unix():
		return Event{}, reject(OutcomeBadTimestamp, "%s is more than %s in the future", StandardTimestampHeader, tolerance)
	}
	sigs := parseStandardSignatures(sigHeader)
	if len(sigs) == 0 {
		return Event{}, reject(OutcomeBadSignature, "malformed %s header: no v1,<base64> entry", StandardSignatureHeader)
	}
	if len(secrets) == 0 {
		return Event{}, reject(OutcomeBadSignature, "no standard secret is configured for this endpoint")
	}
	if !standardMatch(id, ts, body, sigs, secrets) {
		return Event{}, reject(OutcomeBadSignature, "no valid signature for any secret of this endpoint")
	}
	if !jsonObject(body) {
		return Event{}, reject(OutcomeBadPayload, "the body is not a JSON object")
	}
	var p standardPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return Event{}, reject(OutcomeBadPayload, "the payload's type and timestamp must be strings")
	}
	ev := Event{Provider: Standard, ID: id, Type: p.Type, Created: t, Data: body}
	if pt, err := time.Parse(time.RFC3339Nano, p.Timestamp); err == nil {
		ev.Created = pt.Unix()
	}
	return ev, checkEvent(&ev)
}

// standardMatch reports whether any signature is the HMAC of id.ts.body under any
// secret. Malformed secrets (rejected when they were added) match nothing.
func standardMatch(id, ts string, body []byte, sigs [][]byte, secrets []string) bool {
	for _, s := range secrets {
		key, err := decodeStandardSecret(s)
		if err != nil {
			continue
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id))
		mac.Write([]byte{'.'})
		mac.Write([]byte(ts))
		mac.Write([]byte{'.'})
		mac.Write(body)
		want := mac.Sum(nil)
		for _, sig := range sigs {
			if hmac.Equal(want, sig) {
				return true
			}
		}
	}
	return false
}

// parseStandardSignatures returns the v1 signatures of a webhook-signature header:
// space-separated "<version>,<base64>" entries. Entries of other versions (v1a is
// asymmetric), and v1 entries that are not the base64 of 32 bytes, are skipped.
func parseStandardSignatures(header string) [][]byte {
	var out [][]byte
	for entry := range strings.FieldsSeq(header) {
		version, b64, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue
		}
		sig, err := base64.StdEncoding.Strict().DecodeString(b64) // canonical only
		if err != nil || len(sig) != sha256.Size {
			continue
		}
		out = append(out, sig)
		if len(out) == 16 { // a sender rotating keys sends a few; bound the work
			break
		}
	}
	return out
}

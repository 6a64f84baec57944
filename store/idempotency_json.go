package store

import (
	"encoding/base64"
	"encoding/json"

	"github.com/circlegate/circlegate/internal/jsonx"
)

// encodeIdempotency returns json.Marshal(i), byte for byte, without reflection: a
// fleet records one with every commit (under the job's id), and the reflective
// encoder was a visible part of a worker's CPU per mutation.
func encodeIdempotency(i *Idempotency) []byte {
	b := make([]byte, 0, 32+len(i.Digest)+base64.StdEncoding.EncodedLen(len(i.Result)))
	b = append(b, `{"digest":`...)
	if out, ok := jsonx.AppendPlainString(b, i.Digest); ok {
		b = out
	} else {
		q, _ := json.Marshal(i.Digest) // never fails for a string
		b = append(b, q...)
	}
	b = append(b, `,"result":`...)
	if i.Result == nil {
		return append(b, "null}"...)
	}
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, i.Result)
	return append(b, `"}`...)
}

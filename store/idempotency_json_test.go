package store

import (
	"encoding/json"
	"testing"
)

// FuzzEncodeIdempotency: the hand-written encoding is json.Marshal's.
func FuzzEncodeIdempotency(f *testing.F) {
	f.Add("a0fa449c70a8a9033fcb618dfab24d13941080fd0da5a2cca643682d5a8bb252", []byte(`{"jobId":"x"}`), false)
	f.Add("<\"é\u2028", []byte{0, 0xff}, false)
	f.Add("", []byte(nil), true)
	f.Fuzz(func(t *testing.T, digest string, result []byte, nilResult bool) {
		i := Idempotency{Digest: digest, Result: result}
		if nilResult {
			i.Result = nil
		}
		want, err := json.Marshal(i)
		if err != nil {
			t.Fatal(err)
		}
		if got := encodeIdempotency(&i); string(got) != string(want) {
			t.Fatalf("encodeIdempotency = %s, json.Marshal = %s", got, want)
		}
	})
}

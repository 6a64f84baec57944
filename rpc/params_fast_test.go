package rpc

import (
	"encoding/json"
	"reflect"
	"testing"
)

// decodeBoth decodes data into a zero P with decodeFast and with json.Unmarshal; it
// returns whether the fast path took it, and fails when it did and the two differ.
func decodeBoth[P any, PP interface {
	*P
	fastParams
}](t *testing.T, data []byte) bool {
	t.Helper()
	var fast, slow P
	if !PP(&fast).decodeFast(data) {
		return false
	}
	if err := json.Unmarshal(data, &slow); err != nil {
		t.Fatalf("decodeFast took %q, json.Unmarshal fails: %v", data, err)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("params %q: decodeFast %+v, json.Unmarshal %+v", data, fast, slow)
	}
	return true
}

// FuzzFastParams holds the fast decoder of mutate's and query's params to
// json.Unmarshal: on every valid JSON value it either declines or decodes exactly
// what json.Unmarshal decodes, and it takes the common forms.
func FuzzFastParams(f *testing.F) {
	for _, seed := range []string{
		`{"contextId":"c1","method":"increment","args":{"by":1},"idempotencyKey":"k"}`,
		`{"contextId":"c1","method":"get"}`, `{"args":null,"method":null}`, `{"args":[1,"]"],"args":"x"}`,
		`{"method":"a","method":"b"}`, `{"METHOD":"m"}`, `{"contextıd":"c"}`, `{"method":"\u00e9\n"}`,
		"{\"method\":\"\xff\"}", `{"method":1}`, `{"contextId":{}}`, `[]`, `"s"`, `{"other":{"method":"x"}}`,
		`{"\u006dethod":"m"}`, `{"kontext":"\u212a"}`, `{"ſcript":1}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		decodeBoth[mutateParams](t, data)
		decodeBoth[queryParams](t, data)
	})
}

// TestFastParamsTakesCommonForms: the requests clients send take the fast path, and
// what it must leave to json.Unmarshal does not.
func TestFastParamsTakesCommonForms(t *testing.T) {
	for _, tc := range []struct {
		params string
		fast   bool
	}{
		{`{"contextId":"c1","method":"increment","args":{"by":1}}`, true},
		{` { "contextId" : "c1" , "method" : "get" , "args" : null , "idempotencyKey" : "k-1" } `, true},
		{`{"method":"caf\u00e9","args":"é","extra":[1,2]}`, true},
		{"{\"method\":\"m\",\"contextId\":\"\xff\xfe\"}", true}, // replaced as json.Unmarshal does
		{`{"Method":"m"}`, false}, // json.Unmarshal matches it
		{`{"method":7}`, false},   // json.Unmarshal makes the error
		{`["c1","m"]`, false},
	} {
		if got := decodeBoth[mutateParams](t, []byte(tc.params)); got != tc.fast {
			t.Errorf("%s: fast path %v, want %v", tc.params, got, tc.fast)
		}
	}
}

// BenchmarkMutateParams decodes a typical mutate's params the fast way and with
// json.Unmarshal.
func BenchmarkMutateParams(b *testing.B) {
	raw := []byte(`{"contextId":"9f2c4e6a8b0d1f3a5c7e9b1d3f5a7c9e2b4d6f8a0c2e4a6c8e0b2d4f6a8c0e2a4","method":"increment","args":{"by":1},"idempotencyKey":"order-12345"}`)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var p mutateParams
			if !p.decodeFast(raw) {
				b.Fatal("declined")
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var p mutateParams
			if err := json.Unmarshal(raw, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
}

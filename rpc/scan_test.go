package rpc

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzMembers checks the scanner against encoding/json on every valid JSON object:
// the same members, in order, with byte-identical raw values.
func FuzzMembers(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"a":1}`, `{"a":"x\\"y","b":[1,{"c":"]"}],"d":null}`, ` { "k" : { } , "l" : [ ] } `,
		`{"\u0061":true,"a":false}`, `{"a":-1.5e3,"b":"}"}`, `[1]`, `"s"`, `{"a":{"b":{"c":[[]]}}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		var want map[string]json.RawMessage
		isObject := json.Unmarshal(data, &want) == nil && bytes.TrimSpace(data)[0] == '{'
		got := map[string]json.RawMessage{}
		err := members(data, func(k, v []byte) error {
			if _, ok := unquote(k); !ok {
				t.Fatalf("key %q does not unquote", k)
			}
			var key string // as encoding/json spells it (invalid UTF-8 becomes U+FFFD)
			_ = json.Unmarshal(k, &key)
			got[key] = append(json.RawMessage{}, v...)
			return nil
		})
		if !isObject {
			if err == nil {
				t.Fatalf("members accepted a non-object: %q", data)
			}
			return
		}
		if err != nil {
			t.Fatalf("members(%q): %v", data, err)
		}
		if len(got) != len(want) {
			t.Fatalf("members(%q) = %d keys, encoding/json %d", data, len(got), len(want))
		}
		for k, v := range want {
			var a, b any
			_ = json.Unmarshal(v, &a)
			_ = json.Unmarshal(got[k], &b)
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			if !bytes.Equal(ja, jb) {
				t.Fatalf("members(%q)[%q] = %s, encoding/json %s", data, k, got[k], v)
			}
		}
	})
}

package sdk

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
)

type appended struct{ N int64 }

func (a appended) AppendJSON(b []byte) []byte { return append(append(b, `{"n":`...), '1', '}') }

// TestMarshalJSON: the SDK's encoder writes what encoding/json writes, for the values
// it encodes itself and for those it hands over.
func TestMarshalJSON(t *testing.T) {
	for _, v := range []any{
		nil, true, false, 0, -1, math.MaxInt64, int64(math.MinInt64), int32(-7), uint(3), uint64(math.MaxUint64), uint32(9),
		"", "plain text 123", `quote"`, `back\slash`, "<html>&", "tab\t", "é", "\u2028", "\x7f",
		3.5, []int{1}, map[string]int{"a": 1}, struct{ A int }{2},
	} {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := marshalJSON(v); err != nil || !bytes.Equal(got, want) {
			t.Errorf("marshalJSON(%#v) = %s, %v; want %s", v, got, err, want)
		}
	}
	if got, _ := marshalJSON(appended{}); string(got) != `{"n":1}` {
		t.Errorf("a JSONAppender encoded as %s", got)
	}
}

// TestUnmarshalJSON: the SDK's decoder gives what encoding/json gives, errors
// included, for every target it decodes itself.
func TestUnmarshalJSON(t *testing.T) {
	for _, in := range []string{
		"0", "42", "-42", "007", "-0", "1.5", "1e3", " 42", "42 ", "9223372036854775807", "9223372036854775808",
		"-9223372036854775808", "99999999999999999999", "null", `"x"`, `""`, `"plain"`, `"a\"b"`, `"\u0041"`, `"é"`,
		`"tab	"`, "true", "false", "tru", "", "-", `"unterminated`, "[1]",
	} {
		checkDecode(t, []byte(in))
	}
}

func checkDecode(t *testing.T, data []byte) {
	t.Helper()
	var i64, wi64 int64 = 5, 5
	var i, wi = 5, 5
	var s, ws = "prev", "prev"
	var b, wb = true, true
	for _, pair := range []struct{ got, want any }{{&i64, &wi64}, {&i, &wi}, {&s, &ws}, {&b, &wb}} {
		gerr := unmarshalJSON(data, pair.got)
		werr := json.Unmarshal(data, pair.want)
		g, _ := json.Marshal(pair.got)
		w, _ := json.Marshal(pair.want)
		if (gerr == nil) != (werr == nil) || !bytes.Equal(g, w) {
			t.Errorf("decode %q into %T: got %s, %v; want %s, %v", data, pair.got, g, gerr, w, werr)
		}
	}
}

// FuzzUnmarshalJSON: for any input, the SDK's decoder and encoding/json agree.
func FuzzUnmarshalJSON(f *testing.F) {
	for _, s := range []string{"42", "-1", `"x"`, "true", "1.5", "null"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkDecode(t, data) })
}

// FuzzMarshalJSONString: for any string, the SDK's encoder and encoding/json agree.
func FuzzMarshalJSONString(f *testing.F) {
	f.Add("plain")
	f.Add("<&>\"\\\x00é")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got, err := marshalJSON(s); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("marshalJSON(%q) = %s, %v; want %s", s, got, err, want)
		}
	})
}

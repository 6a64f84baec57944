package execution

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestCompact: job args are stored compacted, in a buffer of their own, whether or not
// they held white space; what is not JSON is kept as it came.
func TestCompact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{``, ``},
		{`{"a":1,"b":[true,null]}`, `{"a":1,"b":[true,null]}`},
		{"{ \"a\" : 1,\n\t\"b\" : [ true ]\r\n}", `{"a":1,"b":[true]}`},
		{`{"s":"two words"}`, `{"s":"two words"}`},
		{`{"s":"a\tb"}`, `{"s":"a\tb"}`},
		{`not json`, `not json`},
		{`{"a":`, `{"a":`},
	} {
		in := []byte(tc.in)
		got := compact(in)
		if string(got) != tc.want {
			t.Errorf("compact(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if len(in) > 0 && json.Valid(in) {
			in[0] = 'X' // the caller's buffer may be reused
			if bytes.HasPrefix(got, []byte("X")) {
				t.Errorf("compact(%q) returned the caller's buffer", tc.in)
			}
		}
	}
}

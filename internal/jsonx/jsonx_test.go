package jsonx

import (
	"encoding/json"
	"testing"
)

// FuzzAppendPlainString checks that a string it takes is appended as json.Marshal
// writes it, and that b is unchanged for one it leaves to json.Marshal.
func FuzzAppendPlainString(f *testing.F) {
	for _, s := range []string{"", "abc", `a"b`, `a\b`, "<&>", "é", "\x00", "\u2028", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		got, ok := AppendPlainString([]byte("x"), s)
		switch {
		case ok && string(got) != "x"+string(want):
			t.Fatalf("appended %s, json.Marshal writes %s", got[1:], want)
		case !ok && string(got) != "x":
			t.Fatalf("changed b for a string it refused: %q", got)
		}
	})
}

func TestAppendPlainString(t *testing.T) {
	for s, plain := range map[string]bool{"evt_1": true, "": true, "a b.c:d": true, `a"b`: false, "<": false, "é": false, "\n": false} {
		got, ok := AppendPlainString(nil, s)
		if ok != plain || (ok && string(got) != `"`+s+`"`) {
			t.Errorf("AppendPlainString(%q) = %q, %v; want plain %v", s, got, ok, plain)
		}
	}
}

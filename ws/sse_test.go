package ws

import (
	"strconv"
	"testing"
)

func TestParseSince(t *testing.T) {
	got, err := parseSince([]string{"a:1", "ctx:with:colons:7"}, "a:9")
	if err != nil || got["a"] != 9 || got["ctx:with:colons"] != 7 || len(got) != 2 {
		t.Fatalf("parseSince = %v, %v; want a=9 (Last-Event-ID wins) and the id with colons", got, err)
	}
	for _, bad := range []string{"", "nocolon", ":5", "a:", "a:-1", "a:1x", "a:99999999999999999999", "a:07", "a:00", "a:+1"} {
		if _, err := parseSince([]string{bad}, ""); err == nil {
			t.Errorf("parseSince(%q): want an error", bad)
		}
	}
	if got, err := parseSince(nil, ""); got != nil || err != nil {
		t.Errorf("parseSince(nothing) = %v, %v", got, err)
	}
}

// FuzzParseSince: resume points come from clients (query and Last-Event-ID); any
// input is either refused or parsed into points that print back to exactly what was
// given (a seq with leading zeros is refused: testdata/fuzz holds the case).
func FuzzParseSince(f *testing.F) {
	for _, s := range []string{"a:1", "x:y:2", ":", "a:", "a:18446744073709551615", "\x00:1"} {
		f.Add(s, "b:3")
	}
	f.Fuzz(func(t *testing.T, q, last string) {
		got, err := parseSince([]string{q}, last)
		if err != nil {
			return
		}
		for id, seq := range got {
			if id == "" {
				t.Fatalf("empty context id from %q, %q", q, last)
			}
			want := id + ":" + strconv.FormatUint(seq, 10)
			if want != last && want != q {
				t.Fatalf("point %q came from neither %q nor %q", want, q, last)
			}
		}
	})
}

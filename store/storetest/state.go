package storetest

import (
	"slices"
	"strings"
	"testing"

	"github.com/circlegate/circlegate/store"
)

func testGetScan(t *testing.T, open Opener) {
	s := newStore(t, open, store.HistoryConfig{})
	app := installApp(t, s, tenantA, "app")
	c := createContext(t, s, tenantA, app.ID, Set("a/1", "genesis"))
	other := createContext(t, s, tenantA, app.ID, Set("a/1", "other"), Set("a/4", "other"))
	c = commitNext(t, s, c, []store.Write{Set("a/1", "1"), Set("a/2", "2"), Set("a/3", "3"), Set("b", "b"), Set("c", "c")})
	c = commitNext(t, s, c, []store.Write{Del("c"), Del("never-set")})

	for k, want := range map[string]string{"a/1": "1", "a/2": "2", "b": "b"} {
		if v, ok, err := s.Get(t.Context(), c.ID, []byte(k)); err != nil || !ok || string(v) != want {
			t.Errorf("Get(%s) = %q, %v, %v; want %q", k, v, ok, err, want)
		}
	}
	for _, k := range []string{"c", "a/4", "never-set", "a"} {
		if v, ok, err := s.Get(t.Context(), c.ID, []byte(k)); err != nil || ok {
			t.Errorf("Get(%s) = %q, %v, %v; want not found", k, v, ok, err)
		}
	}
	tests := []struct {
		prefix, after string
		limit         int
		want          []string
	}{
		{"", "", 100, []string{"a/1", "a/2", "a/3", "b"}},
		{"a/", "", 100, []string{"a/1", "a/2", "a/3"}},
		{"a/", "", 2, []string{"a/1", "a/2"}},
		{"a/", "a/1", 100, []string{"a/2", "a/3"}},
		{"a/", "a/0", 1, []string{"a/1"}},
		{"a/", "a/3", 100, nil},
		{"a/", "0", 100, []string{"a/1", "a/2", "a/3"}},
		{"a/", "z", 100, nil},
		{"", "a/2", 100, []string{"a/3", "b"}},
		{"b", "", 100, []string{"b"}},
		{"c", "", 100, nil},
		{"zz", "", 100, nil},
	}
	for _, tc := range tests {
		checkScan(t, s, c.ID, tc.prefix, tc.after, tc.limit, tc.want)
	}
	kvs, err := s.Scan(t.Context(), c.ID, []byte("a/"), nil, 100)
	if err != nil || len(kvs) != 3 || string(kvs[0].Value) != "1" || string(kvs[2].Value) != "3" {
		t.Errorf("Scan values = %q, %v", kvs, err)
	}
	checkScan(t, s, other.ID, "", "", 100, []string{"a/1", "a/4"})
}

func testScanBinaryKeys(t *testing.T, open Opener) {
	s := newStore(t, open, store.HistoryConfig{})
	app := installApp(t, s, tenantA, "app")
	c := createContext(t, s, tenantA, app.ID)
	keys := []string{"\x00", "\x00\x00", "\x00\x01", "\x01", "a", "a\x00", "a\x00b", "a\xff", "a\xff\xff",
		"ab", "\xfe", "\xfe\xff", "\xff", "\xff\x00", "\xff\xff", "\xff\xff\xff"}
	var ws []store.Write
	for _, k := range keys {
		ws = append(ws, Set(k, "v"+k))
	}
	c = commitNext(t, s, c, ws)
	for _, k := range keys {
		if v, ok, err := s.Get(t.Context(), c.ID, []byte(k)); err != nil || !ok || string(v) != "v"+k {
			t.Errorf("Get(%q) = %q, %v, %v", k, v, ok, err)
		}
	}
	prefixes := []string{"", "\x00", "\x00\x00", "a", "a\x00", "a\xff", "\xfe", "\xff", "\xff\xff", "\xff\xff\xff", "\xff\xff\xff\xff"}
	afters := []string{"", "\x00", "\x00\x00\x00", "a", "a\x00", "a\xff\xff", "\xff", "\xff\xff\xff"}
	for _, prefix := range prefixes {
		for _, after := range afters {
			checkScan(t, s, c.ID, prefix, after, 100, modelScan(keys, prefix, after, 100))
		}
	}
	// Paging with limit 3 from the start visits every key once, in order.
	var got []string
	for after, pages := "", 0; pages <= len(keys); pages++ { // bounded: a bug must not loop
		kvs, err := s.Scan(t.Context(), c.ID, nil, []byte(after), 3)
		if err != nil {
			t.Fatalf("Scan: %v", err)
		}
		if len(kvs) == 0 {
			break
		}
		got = append(got, kvKeys(kvs)...)
		after = got[len(got)-1]
	}
	if want := sortedKeys(keys); !slices.Equal(got, want) {
		t.Errorf("paged scan %q, want %q", got, want)
	}
}

// modelScan is what Scan must return over keys.
func modelScan(keys []string, prefix, after string, limit int) []string {
	var out []string
	for _, k := range sortedKeys(keys) {
		if strings.HasPrefix(k, prefix) && (after == "" || k > after) && len(out) < limit {
			out = append(out, k)
		}
	}
	return out
}

func checkScan(t *testing.T, s store.Store, id, prefix, after string, limit int, want []string) {
	t.Helper()
	var afterB []byte
	if after != "" {
		afterB = []byte(after)
	}
	kvs, err := s.Scan(t.Context(), id, []byte(prefix), afterB, limit)
	if err != nil {
		t.Fatalf("Scan(%q, %q, %d): %v", prefix, after, limit, err)
	}
	if got := kvKeys(kvs); !slices.Equal(got, want) && (len(got) != 0 || len(want) != 0) {
		t.Errorf("Scan(%q, %q, %d) = %q, want %q", prefix, after, limit, got, want)
	}
}

func testStateSize(t *testing.T, open Opener) {
	s := newStore(t, open, store.HistoryConfig{})
	app := installApp(t, s, tenantA, "app")
	c := createContext(t, s, tenantA, app.ID)
	steps := []struct {
		writes      []store.Write
		keys, bytes int64
	}{
		{nil, 0, 0},
		{[]store.Write{Set("a", "xyz")}, 1, 4},
		{[]store.Write{Set("bb", "1")}, 2, 7},
		{[]store.Write{Set("a", "x")}, 2, 5},
		{[]store.Write{Del("bb")}, 1, 2},
		{[]store.Write{Del("missing")}, 1, 2},
		{[]store.Write{Set("t", "12345"), Del("t")}, 1, 2},
		{[]store.Write{Set("u", "1"), Set("u", "123")}, 2, 6},
		{[]store.Write{Del("a"), Set("a", "")}, 2, 5},
	}
	for i, st := range steps {
		if i > 0 {
			c = commitNext(t, s, c, st.writes)
		}
		keys, bytes, err := s.StateSize(t.Context(), c.ID)
		if err != nil || keys != st.keys || bytes != st.bytes {
			t.Errorf("step %d: StateSize = %d, %d, %v; want %d, %d", i, keys, bytes, err, st.keys, st.bytes)
		}
	}
	kvs, err := s.Scan(t.Context(), c.ID, nil, nil, 100)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	var n int64
	for _, kv := range kvs {
		n += int64(len(kv.Key) + len(kv.Value))
	}
	if keys, bytes, _ := s.StateSize(t.Context(), c.ID); keys != int64(len(kvs)) || bytes != n {
		t.Errorf("StateSize = %d, %d; a scan counts %d, %d", keys, bytes, len(kvs), n)
	}
}

package execution

import (
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestSnapshotStateScan: a scan of a snapshot's state returns what the Store
// contract says (keys with the prefix, greater than after, in byte order, at most
// limit of them) for random binary keys, prefixes, starting points and limits.
func TestSnapshotStateScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"", "a", "b", "\x00", "\xff", "ab"}
	word := func(n int) string {
		var b strings.Builder
		for range rng.IntN(n + 1) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	for round := range 300 {
		m := map[string][]byte{}
		for range rng.IntN(30) {
			k := word(4)
			m[k] = []byte("v" + k)
		}
		st := &snapshotState{m: m}
		for range 20 {
			prefix, after, limit := word(2), word(4), 1+rng.IntN(8)
			got, err := st.Scan([]byte(prefix), []byte(after), limit)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, k := range slices.Sorted(maps.Keys(m)) {
				if strings.HasPrefix(k, prefix) && (after == "" || k > after) && len(want) < limit {
					want = append(want, k)
				}
			}
			var keys []string
			for _, kv := range got {
				keys = append(keys, string(kv.Key))
				if string(kv.Value) != "v"+string(kv.Key) {
					t.Fatalf("round %d: key %q came with value %q", round, kv.Key, kv.Value)
				}
			}
			if !slices.Equal(keys, want) {
				t.Fatalf("round %d: Scan(%q, after %q, %d) = %q, want %q", round, prefix, after, limit, keys, want)
			}
		}
	}
}

package execution

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/circlegate/circlegate/store"
)

// sortedState is a StateReader over a map, for the overlay tests.
type sortedState map[string]string

func (s sortedState) Get(key []byte) ([]byte, bool, error) {
	v, ok := s[string(key)]
	return []byte(v), ok, nil
}

func (s sortedState) Scan(prefix, after []byte, limit int) ([]store.KV, error) {
	var out []store.KV
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range s {
			if !yield(k) {
				return
			}
		}
	}) {
		if strings.HasPrefix(k, string(prefix)) && k > string(after) && len(out) < limit {
			out = append(out, store.KV{Key: []byte(k), Value: []byte(s[k])})
		}
	}
	return out, nil
}

// FuzzScanOverlay checks scan against a model: a call's writes and removals laid
// over the state, read page by page with random limits, list exactly the model's
// entries in key order, and every page but the last says more may follow.
func FuzzScanOverlay(f *testing.F) {
	f.Add(uint64(1), uint8(20), uint8(10), uint8(3))
	f.Add(uint64(2), uint8(200), uint8(150), uint8(1))
	f.Add(uint64(3), uint8(0), uint8(50), uint8(7))
	f.Add(uint64(4), uint8(120), uint8(0), uint8(100))
	f.Fuzz(func(t *testing.T, seed uint64, nState, nOps, pageLimit uint8) {
		r := rand.New(rand.NewPCG(seed, seed>>7))
		key := func() string { return fmt.Sprintf("%c/%03d", "ab"[r.IntN(2)], r.IntN(300)) }
		st := sortedState{}
		for range int(nState) {
			st[key()] = "old"
		}
		model := cloneState(st)
		in := &engineInstance{}
		in.call = engineCall{c: Call{State: st}, lim: Limits{}.WithDefaults(), active: true, index: map[string]int{}}
		for i := range int(nOps) {
			k := key()
			if r.IntN(3) == 0 {
				in.put("storage_remove", []byte(k), nil, true)
				delete(model, k)
			} else {
				v := fmt.Sprint("new", i)
				in.put("storage_write", []byte(k), []byte(v), false)
				model[k] = v
			}
		}
		for _, prefix := range []string{"", "a/", "b/0", "c"} {
			var want []string
			for k, v := range model {
				if strings.HasPrefix(k, prefix) {
					want = append(want, k+"="+v)
				}
			}
			slices.Sort(want)
			var got []string
			after := []byte(nil)
			for pages := 0; ; pages++ {
				if pages > 1000 {
					t.Fatal("scan does not end")
				}
				page, more := in.scan([]byte(prefix), after, max(int(pageLimit), 1))
				for _, kv := range page {
					got = append(got, string(kv.Key)+"="+string(kv.Value))
				}
				if len(page) > max(int(pageLimit), 1) {
					t.Fatalf("page of %d entries, limit %d", len(page), pageLimit)
				}
				if !more {
					break
				}
				if len(page) == 0 {
					t.Fatal("an empty page says more follow")
				}
				after = page[len(page)-1].Key
			}
			if !slices.Equal(got, want) {
				t.Fatalf("prefix %q:\ngot  %v\nwant %v", prefix, got, want)
			}
		}
	})
}

func cloneState(s sortedState) map[string]string {
	m := make(map[string]string, len(s))
	for k, v := range s {
		m[k] = v
	}
	return m
}

// TestScanPageBytes: a page ends early once it holds abiScanPageBytes.
func TestScanPageBytes(t *testing.T) {
	st := sortedState{}
	big := strings.Repeat("x", 300<<10)
	for i := range 10 {
		st[fmt.Sprintf("k%d", i)] = big
	}
	in := &engineInstance{}
	in.call = engineCall{c: Call{State: st}, lim: Limits{}.WithDefaults(), active: true, index: map[string]int{}}
	page, more := in.scan(nil, nil, 100)
	if len(page) != 3 || !more {
		t.Fatalf("page of %d entries (more %v), want 3 and more", len(page), more)
	}
	enc := abiEncodeScan(page)
	if len(enc) > abiScanPageBytes || !bytes.HasPrefix(enc, []byte{3, 0, 0, 0}) {
		t.Fatalf("encoded page is %d bytes", len(enc))
	}
}

package execution

import (
	"bytes"
	"slices"

	"github.com/circlegate/circlegate/store"
)

// get reads a key as the call sees it: its own writes first, then the state.
func (in *engineInstance) get(key []byte) ([]byte, bool) {
	cl := &in.call
	if i, ok := cl.index[string(key)]; ok {
		w := &cl.writes[i]
		return w.Value, !w.Delete
	}
	if cl.c.State == nil {
		return nil, false
	}
	v, ok, err := cl.c.State.Get(key)
	if err != nil {
		in.trapState(err)
	}
	return v, ok
}

// put sets (or, with del, removes) a key in the call's writes and returns the value
// it had. The key and value are copied.
func (in *engineInstance) put(fn string, key, value []byte, del bool) (old []byte, existed bool) {
	old, existed = in.get(key)
	cl := &in.call
	var v []byte
	if !del {
		v = append(make([]byte, 0, len(value)), value...)
	}
	if i, ok := cl.index[string(key)]; ok {
		cl.writes[i].Value, cl.writes[i].Delete = v, del
		return old, existed
	}
	if len(cl.writes) >= cl.lim.MaxWrites {
		in.trap("%s: the call writes more than max_writes (%d) keys", fn, cl.lim.MaxWrites)
	}
	k := bytes.Clone(key)
	cl.index[string(k)] = len(cl.writes)
	cl.writes = append(cl.writes, store.Write{Key: k, Value: v, Delete: del})
	return old, existed
}

// scan returns up to limit entries with prefix after after, the call's writes laid
// over the state, and whether more may follow. The page ends early once it holds
// abiScanPageBytes.
func (in *engineInstance) scan(prefix, after []byte, limit int) ([]store.KV, bool) {
	var out []store.KV
	more := false
	cur := after
	for {
		want := limit - len(out)
		var page []store.KV
		if st := in.call.c.State; st != nil {
			var err error
			if page, err = st.Scan(prefix, cur, want); err != nil {
				in.trapState(err)
			}
		}
		end := len(page) < want
		var hi []byte // the last key the state page covers; nil: to the end
		if !end {
			hi = page[len(page)-1].Key
		}
		out = append(out, in.overlay(page, prefix, cur, hi)...)
		if len(out) >= limit || end {
			more = len(out) > limit || !end
			out = out[:min(len(out), limit)]
			break
		}
		cur = hi
	}
	size := 4
	for i, kv := range out {
		size += 8 + len(kv.Key) + len(kv.Value)
		if size > abiScanPageBytes && i > 0 {
			return out[:i], true
		}
	}
	return out, more
}

// overlay merges the call's writes to keys in (lo, hi] with prefix into a page of
// the state, in key order: written values replace, removed keys vanish.
func (in *engineInstance) overlay(page []store.KV, prefix, lo, hi []byte) []store.KV {
	cl := &in.call
	var mine []int
	for i := range cl.writes {
		k := cl.writes[i].Key
		if bytes.HasPrefix(k, prefix) && bytes.Compare(k, lo) > 0 && (hi == nil || bytes.Compare(k, hi) <= 0) {
			mine = append(mine, i)
		}
	}
	if len(mine) == 0 {
		return page
	}
	slices.SortFunc(mine, func(a, b int) int { return bytes.Compare(cl.writes[a].Key, cl.writes[b].Key) })
	out := make([]store.KV, 0, len(page)+len(mine))
	j := 0
	for _, kv := range page {
		for ; j < len(mine) && bytes.Compare(cl.writes[mine[j]].Key, kv.Key) < 0; j++ {
			out = appendWrite(out, &cl.writes[mine[j]])
		}
		if j < len(mine) && bytes.Equal(cl.writes[mine[j]].Key, kv.Key) {
			out = appendWrite(out, &cl.writes[mine[j]])
			j++
			continue
		}
		if _, touched := cl.index[string(kv.Key)]; !touched {
			out = append(out, kv)
		}
	}
	for ; j < len(mine); j++ {
		out = appendWrite(out, &cl.writes[mine[j]])
	}
	return out
}

func appendWrite(out []store.KV, w *store.Write) []store.KV {
	if w.Delete {
		return out
	}
	return append(out, store.KV{Key: w.Key, Value: w.Value})
}

package store

import (
	"context"
	"errors"
	"slices"

	"github.com/circlegate/circlegate/internal/redisx"
)

var _ SnapshotReader = (*Redis)(nil)

// Snapshots reads the heads of refs, and the states of at most maxStateBytes, with
// one script call on a single server (one per context, in one pipeline, on a
// cluster: evalBySlot).
func (r *Redis) Snapshots(ctx context.Context, refs []ContextRef, maxStateBytes int64) []Snapshot {
	out := make([]Snapshot, len(refs))
	if err := r.enter(ctx); err != nil {
		for i := range out {
			out[i].Err = err
		}
		return out
	}
	var idx []int
	for i, ref := range refs {
		if !validID(ref.ID) {
			out[i].Err = notFoundContext(ref.ID)
			continue
		}
		idx = append(idx, i)
	}
	common := append(make([]any, 0, 2+len(headFields)), maxStateBytes, snapshotBytesField)
	for _, f := range headFields {
		common = append(common, f)
	}
	res := r.evalBySlot(ctx, scripts.snapshot, idx, common, func(keys []string, args []any, i int) ([]string, []any) {
		k := r.ctxKeys(refs[i].ID)
		return append(keys, k.head, k.state), args
	})
	for n, i := range idx {
		if res[n].err != nil {
			out[i].Err = redisx.Err(res[n].err, "read contexts")
			continue
		}
		out[i] = decodeSnapshot(refs[i], res[n].val)
	}
	return out
}

// snapshotBytesField is the 1-based position of the state bytes (b) in headFields.
var snapshotBytesField = slices.Index(headFields, "b") + 1

// decodeSnapshot decodes one context's {head values, state} from the script.
func decodeSnapshot(ref ContextRef, v any) Snapshot {
	pair, _ := v.([]any)
	if len(pair) != 2 {
		return Snapshot{Err: errors.New("snapshot script returned a malformed context")}
	}
	head, _ := pair[0].([]any)
	if len(head) != len(headFields) {
		return Snapshot{Err: errors.New("snapshot script returned a malformed head")}
	}
	h, err := decodeHead(ref.ID, head)
	if err == nil && h.Tenant != ref.Tenant {
		err = notFoundContext(ref.ID)
	}
	if err != nil {
		return Snapshot{Err: err}
	}
	s := Snapshot{Context: h.Context}
	if flat, ok := pair[1].([]any); ok {
		s.Full = true
		s.State = make(map[string][]byte, len(flat)/2)
		for i := 0; i+1 < len(flat); i += 2 {
			k, _ := flat[i].(string)
			val, _ := flat[i+1].(string)
			s.State[k] = []byte(val)
		}
	}
	return s
}

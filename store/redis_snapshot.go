package store

import (
	"context"
	"errors"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/circlegate/circlegate/internal/redisx"
)

var _ SnapshotReader = (*Redis)(nil)

// Snapshots reads the heads of refs, and the states of at most maxStateBytes, with
// one script call on a single server (one per context, in one pipeline, on a
// cluster, where each context has its own slot).
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
	if len(idx) == 0 {
		return out
	}
	groups := [][]int{idx}
	if _, cluster := r.rdb.(*redis.ClusterClient); cluster {
		groups = make([][]int, len(idx))
		for n, i := range idx {
			groups[n] = []int{i}
		}
	}
	for attempt := 0; ; attempt++ {
		noScript := false
		pipe := r.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(groups))
		for g, group := range groups {
			keys := make([]string, 0, 2*len(group))
			for _, i := range group {
				k := r.ctxKeys(refs[i].ID)
				keys = append(keys, k.head, k.state)
			}
			args := append(make([]any, 0, 2+len(headFields)), maxStateBytes, snapshotBytesField)
			for _, f := range headFields {
				args = append(args, f)
			}
			cmds[g] = scripts.snapshot.EvalSha(ctx, pipe, keys, args...)
		}
		_, _ = pipe.Exec(ctx)
		for g, group := range groups {
			vals, err := cmds[g].Slice()
			if isNoScript(err) && attempt == 0 {
				noScript = true
				break
			}
			for n, i := range group {
				switch {
				case err != nil:
					out[i].Err = redisx.Err(err, "read contexts")
				case n >= len(vals):
					out[i].Err = errors.New("snapshot script returned too few results")
				default:
					out[i] = decodeSnapshot(refs[i], vals[n])
				}
			}
		}
		if !noScript {
			return out
		}
		if err := scripts.snapshot.Load(ctx, r.rdb).Err(); err != nil {
			for _, i := range idx {
				out[i].Err = redisx.Err(err, "load snapshot script")
			}
			return out
		}
	}
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

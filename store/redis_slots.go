package store

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

// slotReply is one item's part of a script's array reply, or the error of its call.
type slotReply struct {
	val any
	err error
}

// evalBySlot runs script s over items in as few calls as the deployment allows: one
// call for all of them on a single server, one call per item (all in one pipeline)
// on a cluster, where each context's keys live in their own slot. Every call's args
// start with common; item appends the keys and args of items[n]. The script returns
// an array with one element per item of its call, which comes back in items' order.
// If Redis lost the script (NOSCRIPT: it did not run), it is loaded again and the
// calls that lacked it are sent once more.
func (r *Redis) evalBySlot(ctx context.Context, s *redis.Script, items []int, common []any,
	item func(keys []string, args []any, i int) ([]string, []any)) []slotReply {
	if len(items) == 0 {
		return nil
	}
	out := make([]slotReply, len(items))
	var groups [][]int // positions in items, one group per call
	if _, cluster := r.rdb.(*redis.ClusterClient); cluster {
		for n := range items {
			groups = append(groups, []int{n})
		}
	} else {
		all := make([]int, len(items))
		for n := range all {
			all[n] = n
		}
		groups = [][]int{all}
	}
	for attempt := 0; len(groups) > 0; attempt++ {
		pipe := r.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(groups))
		for g, group := range groups {
			var keys []string
			args := append([]any(nil), common...)
			for _, n := range group {
				keys, args = item(keys, args, items[n])
			}
			cmds[g] = s.EvalSha(ctx, pipe, keys, args...)
		}
		_, _ = pipe.Exec(ctx)
		var again [][]int
		for g, group := range groups {
			vals, err := cmds[g].Slice()
			if isNoScript(err) && attempt == 0 {
				again = append(again, group)
				continue
			}
			for k, n := range group {
				switch {
				case err != nil:
					out[n].err = err
				case k < len(vals):
					out[n].val = vals[k]
				default:
					out[n].err = errors.New("script returned too few results")
				}
			}
		}
		if len(again) > 0 {
			if err := s.Load(ctx, r.rdb).Err(); err != nil {
				for _, group := range again {
					for _, n := range group {
						out[n].err = err
					}
				}
				return out
			}
		}
		groups = again
	}
	return out
}

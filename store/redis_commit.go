package store

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/internal/redisx"
)

// Commit applies one tx with one script; see CommitMany.
func (r *Redis) Commit(ctx context.Context, c Commit) error {
	return r.CommitMany(ctx, []Commit{c})[0]
}

// CommitMany sends one commit script per commit in one pipeline (one round trip, or
// one per cluster node). Each script checks its context's head (tenant, seq, event
// seq, rootHash, an idempotency key already taken) and applies its commit or nothing,
// so commits fail independently. Durability is Redis's: see docs/operations.md for
// what each appendfsync setting risks.
func (r *Redis) CommitMany(ctx context.Context, cs []Commit) []error {
	out := make([]error, len(cs))
	if err := r.enter(ctx); err != nil {
		for i := range out {
			out[i] = err
		}
		return out
	}
	seen := make(map[string]bool, len(cs))
	var idx []int
	for i := range cs {
		switch {
		case seen[cs[i].ContextID]:
			out[i] = errs.E(errs.Internal, "store: two commits to context %s in one CommitMany", cs[i].ContextID)
		case !validID(cs[i].ContextID):
			out[i] = notFoundContext(cs[i].ContextID)
		default:
			out[i] = checkRedisCommit(&cs[i])
		}
		seen[cs[i].ContextID] = true
		if out[i] == nil {
			idx = append(idx, i)
		}
	}
	for attempt := 0; len(idx) > 0; attempt++ {
		cmds, err := r.runCommits(ctx, cs, idx)
		var again []int
		for n, i := range idx {
			cerr := cmds[n].Err()
			if cerr == nil && err != nil && cmds[n].Val() == nil {
				cerr = err
			}
			if isNoScript(cerr) && attempt == 0 {
				again = append(again, i)
				continue
			}
			out[i] = commitResult(&cs[i], cmds[n].Val(), cerr)
		}
		if len(again) > 0 {
			if err := scripts.commit.Load(ctx, r.rdb).Err(); err != nil {
				for _, i := range again {
					out[i] = redisx.Err(err, "load commit script")
				}
				return out
			}
		}
		idx = again
	}
	return out
}

// checkRedisCommit checks what a commit must satisfy whatever the head says: the tx
// follows ExpectedSeq, its hash is TxHash, its events are numbered consecutively.
func checkRedisCommit(c *Commit) error {
	tx := &c.Tx
	switch {
	case tx.Seq != c.ExpectedSeq+1:
		return errs.E(errs.Internal, "store: tx seq %d does not follow %d", tx.Seq, c.ExpectedSeq)
	case tx.Hash != TxHash(tx):
		return errs.E(errs.Internal, "store: tx %d hash is not TxHash(tx)", tx.Seq)
	}
	for i := range tx.Events {
		if tx.Events[i].Seq != tx.Events[0].Seq+uint64(i) {
			return errEventSeq
		}
	}
	return nil
}

func (r *Redis) runCommits(ctx context.Context, cs []Commit, idx []int) ([]*redis.Cmd, error) {
	pipe := r.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(idx))
	for n, i := range idx {
		keys, args := r.commitArgs(&cs[i])
		cmds[n] = scripts.commit.EvalSha(ctx, pipe, keys, args...)
	}
	_, err := pipe.Exec(ctx)
	return cmds, err
}

func (r *Redis) commitArgs(c *Commit) ([]string, []any) {
	k := r.ctxKeys(c.ContextID)
	tx := &c.Tx
	var firstEvent uint64
	if len(tx.Events) > 0 {
		firstEvent = tx.Events[0].Seq
	}
	var idem []byte
	var ttl int64
	if c.IdempotencyKey != "" {
		idem, _ = json.Marshal(c.Idempotency)
		ttl = max(c.IdempotencyTTL.Milliseconds(), 0)
	}
	args := make([]any, 0, 17+3*len(tx.Writes)+3*len(tx.Events))
	args = append(args, c.Tenant, strconv.FormatUint(c.ExpectedSeq, 10), strconv.FormatUint(tx.Seq, 10), tx.PrevHash,
		tx.Hash, firstEvent, len(tx.Events), encodeTx(tx), c.IdempotencyKey, idem, ttl)
	args = r.appendPublish(args, c.Tenant, c.ContextID, tx.Events)
	args = append(args, r.hist.MaxEvents, r.cutoffMs(), len(tx.Writes))
	args = appendWriteArgs(args, tx.Writes)
	args = appendEventArgs(args, tx.Events)
	keys := []string{k.head, k.state, k.keys, k.txs, k.events, k.idem, k.idemTTL + c.IdempotencyKey}
	return keys, args
}

func commitResult(c *Commit, v any, err error) error {
	if err != nil {
		return redisx.Err(err, "commit")
	}
	switch v {
	case "ok":
		return nil
	case "stale", "taken":
		return ErrStale
	case "notfound":
		return notFoundContext(c.ContextID)
	case "prevhash":
		return errs.E(errs.Internal, "store: tx %d prevHash is not the context's rootHash", c.Tx.Seq)
	}
	return errs.E(errs.Internal, "store: commit script returned %v", v)
}

func isNoScript(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "NOSCRIPT")
}

package store

import (
	"context"
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

// CommitMany runs the commit script once for all commits on a single server, or once
// per commit in one pipeline on a cluster (evalBySlot). For each commit the script
// checks its context's head (tenant, seq, event seq, rootHash, an idempotency key
// already taken) and applies the commit or nothing, so commits fail independently.
// Durability is Redis's: see docs/operations.md for what each appendfsync setting
// risks.
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
	res := r.evalBySlot(ctx, scripts.commit, idx, []any{r.hist.MaxEvents, r.cutoffMs()},
		func(keys []string, args []any, i int) ([]string, []any) { return r.commitArgs(keys, args, &cs[i]) })
	for n, i := range idx {
		out[i] = commitResult(&cs[i], res[n].val, res[n].err)
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

// commitArgs appends one commit's keys and args (its arg count first).
func (r *Redis) commitArgs(keys []string, args []any, c *Commit) ([]string, []any) {
	k := r.ctxKeys(c.ContextID)
	tx := &c.Tx
	var firstEvent uint64
	if len(tx.Events) > 0 {
		firstEvent = tx.Events[0].Seq
	}
	var idem []byte
	var ttl int64
	if c.IdempotencyKey != "" {
		idem = encodeIdempotency(&c.Idempotency)
		ttl = max(c.IdempotencyTTL.Milliseconds(), 0)
	}
	at := len(args)
	args = append(args, 0, c.Tenant, strconv.FormatUint(c.ExpectedSeq, 10), strconv.FormatUint(tx.Seq, 10), tx.PrevHash,
		tx.Hash, firstEvent, len(tx.Events), encodeTx(tx), c.IdempotencyKey, idem, ttl)
	args = r.appendPublish(args, c.Tenant, c.ContextID, tx.Events)
	args = append(args, len(tx.Writes))
	args = appendWriteArgs(args, tx.Writes)
	args = appendEventArgs(args, tx.Events)
	args[at] = len(args) - at - 1
	keys = append(keys, k.head, k.state, k.keys, k.txs, k.events, k.idem, k.idemTTL+c.IdempotencyKey)
	return keys, args
}

func commitResult(c *Commit, v any, err error) error {
	if err != nil {
		return redisx.Err(err, "commit")
	}
	if s, ok := v.(string); ok {
		v = s
	}
	switch v {
	case "ok":
		return nil
	case "stale":
		return ErrStale
	case "taken":
		return ErrTaken
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

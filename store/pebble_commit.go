package store

import (
	"context"
	"errors"

	"github.com/cockroachdb/pebble/v2"

	"github.com/circlegate/circlegate/errs"
)

// Commit applies c.Tx in one synced batch: state writes, the idempotency record and
// the tx record, which carries the tx's events and the new head (history is trimmed
// by moving the head's oldest event).
func (p *Pebble) Commit(ctx context.Context, c Commit) error {
	return p.CommitMany(ctx, []Commit{c})[0]
}

// CommitMany checks every commit against its context's head and applies those that
// fit in ONE synced batch, so a worker's whole batch of jobs costs one WAL fsync. The
// locks of all the contexts are held from reading their heads to the end of the
// sync; commits of other callers run meanwhile and Pebble groups their syncs too.
func (p *Pebble) CommitMany(ctx context.Context, cs []Commit) []error {
	errs := make([]error, len(cs))
	if err := p.enter(ctx); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	defer p.exit()
	names := make([]string, len(cs))
	for i := range cs {
		names[i] = contextLockName(cs[i].ContextID)
	}
	defer p.locks.lock(names...)()
	b := p.db.NewBatch()
	heads := make([]head, len(cs))
	idems := make([][]byte, len(cs)) // the encoded idempotency records
	applied := 0
	for i := range cs {
		if errs[i] = p.prepareCommit(&heads[i], &cs[i], cs[:i]); errs[i] != nil {
			continue
		}
		sub := p.db.NewBatch()
		if idems[i], errs[i] = p.commitBatch(sub, &heads[i], &cs[i]); errs[i] == nil {
			errs[i] = b.Apply(sub, nil)
		}
		sub.Close()
		if errs[i] == nil {
			applied++
		}
	}
	if applied == 0 {
		b.Close()
		return errs
	}
	if err := commit(b); err != nil {
		for i := range cs {
			if errs[i] == nil {
				errs[i] = err
				p.heads.del(cs[i].ContextID)
				p.cacheCommit(&cs[i], idems[i], false)
			}
		}
		return errs
	}
	for i := range cs {
		if errs[i] == nil {
			p.heads.put(cs[i].ContextID, heads[i])
			p.cacheCommit(&cs[i], idems[i], true)
		}
	}
	return errs
}

// cacheCommit records a commit's state writes and idempotency record (idem, encoded)
// in the state cache once they are durable, or forgets their keys when the commit
// failed (Pebble may or may not hold them). The context's lock is held.
func (p *Pebble) cacheCommit(c *Commit, idem []byte, durable bool) {
	if p.state == nil {
		return
	}
	set := func(k, v []byte, found bool) {
		if durable {
			p.state.write(k, v, found)
		} else {
			p.state.forget(k)
		}
	}
	for _, w := range c.Tx.Writes {
		set(stateKey(c.ContextID, w.Key), w.Value, !w.Delete)
	}
	if c.IdempotencyKey != "" {
		set(idemKey(c.ContextID, c.IdempotencyKey), idem, true)
	}
}

// prepareCommit loads the head of c's context into h and checks c against it.
func (p *Pebble) prepareCommit(h *head, c *Commit, earlier []Commit) error {
	for _, e := range earlier {
		if e.ContextID == c.ContextID {
			return errs.E(errs.Internal, "store: two commits to context %s in one CommitMany", c.ContextID)
		}
	}
	var err error
	if *h, err = p.lockedTenantHead(c.Tenant, c.ContextID); err != nil {
		return err
	}
	err = checkCommit(h, c)
	if c.IdempotencyKey == "" || (err != nil && !errors.Is(err, ErrStale)) {
		return err
	}
	// The key is looked up on a stale head too: the commit that moved the seq may be
	// this call's own (another delivery of the same job), which ErrTaken tells.
	_, taken, gerr := p.cachedGet(idemKey(c.ContextID, c.IdempotencyKey))
	switch {
	case gerr != nil:
		return gerr
	case taken:
		return ErrTaken // the call was committed already
	}
	return err
}

// checkCommit returns ErrStale if the tx was executed on another head, and an error
// of kind Internal if the tx does not fit the head it claims (a caller's bug).
func checkCommit(h *head, c *Commit) error {
	tx := &c.Tx
	switch {
	case h.Seq != c.ExpectedSeq:
		return ErrStale
	case len(tx.Events) > 0 && tx.Events[0].Seq != h.EventSeq+1:
		return ErrStale // events were appended (UpdateMembers) since execution
	case tx.Seq != c.ExpectedSeq+1:
		return errs.E(errs.Internal, "store: tx seq %d does not follow %d", tx.Seq, c.ExpectedSeq)
	case tx.PrevHash != h.RootHash:
		return errs.E(errs.Internal, "store: tx %d prevHash is not the context's rootHash", tx.Seq)
	case tx.Hash != TxHash(tx):
		return errs.E(errs.Internal, "store: tx %d hash is not TxHash(tx)", tx.Seq)
	}
	return nil
}

// commitBatch adds c to b and returns its encoded idempotency record, if any.
func (p *Pebble) commitBatch(b *pebble.Batch, h *head, c *Commit) ([]byte, error) {
	if err := p.applyTx(b, h, &c.Tx); err != nil {
		return nil, err
	}
	var idem []byte
	if c.IdempotencyKey != "" {
		idem = encodeIdempotency(&c.Idempotency)
		_ = b.Set(idemKey(h.ID, c.IdempotencyKey), idem, nil)
	}
	return idem, nil
}

// applyTx adds tx's writes and log record to b and advances h. The record carries
// the head after the tx (version 3), so a commit writes no head record: a head is
// the last tx's unless a later head record overrides it (overlayHead). It also
// carries the tx's events, so a commit writes no event records either
// (pebble_history.go); an event's RootHash must then be empty or the tx's hash.
func (p *Pebble) applyTx(b *pebble.Batch, h *head, tx *Tx) error {
	for i := range tx.Events {
		if r := tx.Events[i].RootHash; r != "" && r != tx.Hash {
			return errs.E(errs.Internal, "store: tx %d: event %d has a rootHash other than the tx's hash", tx.Seq, tx.Events[i].Seq)
		}
	}
	if err := p.applyWrites(b, h, tx.Writes); err != nil {
		return err
	}
	if err := p.appendEvents(b, h, tx.Events, false); err != nil {
		return err
	}
	_ = b.Set(seqKey(kindTx, h.ID, tx.Seq), encodeTxHead(tx, txHeadOf(h)), nil)
	h.Seq, h.RootHash = tx.Seq, tx.Hash
	return nil
}

// applyWrites adds the state writes to b and keeps h's counters exact: it reads the
// size of each key's previous value (the DB's, or an earlier write of the same tx).
func (p *Pebble) applyWrites(b *pebble.Batch, h *head, ws []Write) error {
	pending := make(map[string]int, len(ws)) // value size, -1 if deleted, by state key
	for _, w := range ws {
		k := stateKey(h.ID, w.Key)
		old, had, err := p.valueSize(k, pending)
		if err != nil {
			return err
		}
		if had {
			h.StateKeys--
			h.StateBytes -= int64(len(w.Key) + old)
		}
		if w.Delete {
			pending[string(k)] = -1
			if had {
				_ = b.Delete(k, nil)
			}
			continue
		}
		pending[string(k)] = len(w.Value)
		h.StateKeys++
		h.StateBytes += int64(len(w.Key) + len(w.Value))
		_ = b.Set(k, w.Value, nil)
	}
	return nil
}

// valueSize returns the size of the value under state key k, if any. The caller
// holds the context's lock, so a cached entry is the committed value.
func (p *Pebble) valueSize(k []byte, pending map[string]int) (int, bool, error) {
	if n, ok := pending[string(k)]; ok {
		return n, n >= 0, nil
	}
	if p.state != nil {
		if n, found, cached := p.state.size(k); cached {
			return n, found, nil
		}
	}
	v, closer, err := p.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, errs.Wrap(errs.Internal, err, "store: read state")
	}
	n := len(v)
	return n, true, closer.Close()
}

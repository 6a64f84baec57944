package store

import (
	"context"
	"errors"

	"github.com/cockroachdb/pebble/v2"

	"github.com/circlegate/circlegate/errs"
)

// Commit applies c.Tx in one synced batch: state writes, the tx record, its events
// (trimming history), the idempotency record and the new head. The context's lock is
// held from reading the head to the end of the fsync; commits to other contexts run
// meanwhile and Pebble groups their syncs.
func (p *Pebble) Commit(ctx context.Context, c Commit) error {
	if err := p.enter(ctx); err != nil {
		return err
	}
	defer p.exit()
	defer p.locks.lock(contextLockName(c.ContextID))()
	h, err := p.tenantHead(c.Tenant, c.ContextID)
	if err != nil {
		return err
	}
	if err := checkCommit(&h, &c); err != nil {
		return err
	}
	b := p.db.NewBatch()
	if err := p.commitBatch(b, &h, &c); err != nil {
		b.Close()
		return err
	}
	return commit(b)
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

func (p *Pebble) commitBatch(b *pebble.Batch, h *head, c *Commit) error {
	if err := p.applyTx(b, h, &c.Tx); err != nil {
		return err
	}
	if c.IdempotencyKey != "" {
		if err := putJSON(b, idemKey(h.ID, c.IdempotencyKey), c.Idempotency); err != nil {
			return err
		}
	}
	return putJSON(b, headKey(h.ID), h)
}

// applyTx adds tx's writes, events and log record to b and advances h.
func (p *Pebble) applyTx(b *pebble.Batch, h *head, tx *Tx) error {
	if err := p.applyWrites(b, h, tx.Writes); err != nil {
		return err
	}
	if err := p.appendEvents(b, h, tx.Events); err != nil {
		return err
	}
	_ = b.Set(seqKey(kindTx, h.ID, tx.Seq), encodeTx(tx), nil)
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

// valueSize returns the size of the value under state key k, if any.
func (p *Pebble) valueSize(k []byte, pending map[string]int) (int, bool, error) {
	if n, ok := pending[string(k)]; ok {
		return n, n >= 0, nil
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

package store

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/cockroachdb/pebble/v2"

	"github.com/circlegate/circlegate/errs"
)

// Get reads one state key of a context; an errs.NotFound error if the context does
// not exist.
func (p *Pebble) Get(ctx context.Context, contextID string, k []byte) ([]byte, bool, error) {
	if err := p.enter(ctx); err != nil {
		return nil, false, err
	}
	defer p.exit()
	if _, err := p.readHead(contextID); err != nil {
		return nil, false, err
	}
	return p.cachedGet(stateKey(contextID, k))
}

// cachedGet reads a state key or an idempotency key through the state cache.
func (p *Pebble) cachedGet(k []byte) ([]byte, bool, error) {
	if p.state == nil {
		return p.get(k)
	}
	v, found, cached, gen := p.state.get(k)
	if cached {
		return v, found, nil
	}
	v, found, err := p.get(k)
	if err == nil {
		p.state.fill(k, v, found, gen)
	}
	return v, found, err
}

// Scan returns up to limit (> 0) state entries with prefix whose key is greater than
// after (an empty after means from the start of prefix), in key order.
func (p *Pebble) Scan(ctx context.Context, contextID string, prefix, after []byte, limit int) ([]KV, error) {
	if limit <= 0 {
		return nil, errs.Param("limit", "must be positive")
	}
	if err := p.enter(ctx); err != nil {
		return nil, err
	}
	defer p.exit()
	if _, err := p.readHead(contextID); err != nil {
		return nil, err
	}
	base := key(kindState, contextID)
	lower := cat(base, prefix...)
	upper := prefixEnd(lower) // never nil: lower starts with kindState
	if len(after) > 0 {
		if a := append(cat(base, after...), 0); bytes.Compare(a, lower) > 0 {
			lower = a
		}
	}
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "store: iterate state")
	}
	var kvs []KV
	for ok := it.First(); ok && len(kvs) < limit; ok = it.Next() {
		kvs = append(kvs, KV{
			Key:   bytes.Clone(it.Key()[len(base):]),
			Value: append([]byte{}, it.Value()...),
		})
	}
	return kvs, closeIter(it)
}

// StateSize returns the number of state keys of a context and their total key+value
// bytes, from counters that Commit keeps exact in the head: one point read.
func (p *Pebble) StateSize(ctx context.Context, contextID string) (int64, int64, error) {
	if err := p.enter(ctx); err != nil {
		return 0, 0, err
	}
	defer p.exit()
	h, err := p.readHead(contextID)
	return h.StateKeys, h.StateBytes, err
}

// TxLog returns up to limit (> 0) txs of a context with seq >= from, in order.
func (p *Pebble) TxLog(ctx context.Context, contextID string, from uint64, limit int) ([]Tx, error) {
	if limit <= 0 {
		return nil, errs.Param("limit", "must be positive")
	}
	if err := p.enter(ctx); err != nil {
		return nil, err
	}
	defer p.exit()
	if _, err := p.readHead(contextID); err != nil {
		return nil, err
	}
	prefix := key(kindTx, contextID)
	it, err := p.db.NewIter(&pebble.IterOptions{
		LowerBound: seqKey(kindTx, contextID, from),
		UpperBound: prefixEnd(prefix),
	})
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "store: iterate txs")
	}
	var txs []Tx
	for ok := it.First(); ok && len(txs) < limit; ok = it.Next() {
		tx, err := decodeTx(it.Value())
		if err != nil {
			_ = closeIter(it)
			return nil, errs.Wrap(errs.Internal, err, "store: decode tx")
		}
		txs = append(txs, tx)
	}
	return txs, closeIter(it)
}

// Idempotent returns the record under an idempotency key of a context.
func (p *Pebble) Idempotent(ctx context.Context, contextID, k string) (Idempotency, bool, error) {
	if err := p.enter(ctx); err != nil {
		return Idempotency{}, false, err
	}
	defer p.exit()
	if _, err := p.readHead(contextID); err != nil {
		return Idempotency{}, false, err
	}
	v, ok, err := p.cachedGet(idemKey(contextID, k))
	if err != nil || !ok {
		return Idempotency{}, false, err
	}
	var rec Idempotency
	if err := json.Unmarshal(v, &rec); err != nil {
		return Idempotency{}, false, errs.Wrap(errs.Internal, err, "store: decode idempotency record")
	}
	return rec, true, nil
}

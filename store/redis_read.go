package store

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/internal/redisx"
)

// Get reads one state key of a context: one HGET, and when the key is absent, a
// check that the context exists (NotFound if not).
func (r *Redis) Get(ctx context.Context, contextID string, key []byte) ([]byte, bool, error) {
	if err := r.enter(ctx); err != nil {
		return nil, false, err
	}
	if !validID(contextID) {
		return nil, false, notFoundContext(contextID)
	}
	k := r.ctxKeys(contextID)
	v, err := r.rdb.HGet(ctx, k.state, string(key)).Bytes()
	if err == nil {
		return v, true, nil
	}
	if !errors.Is(err, redis.Nil) {
		return nil, false, redisx.Err(err, "get state")
	}
	n, err := r.rdb.Exists(ctx, k.head).Result()
	switch {
	case err != nil:
		return nil, false, redisx.Err(err, "get state")
	case n == 0:
		return nil, false, notFoundContext(contextID)
	}
	return nil, false, nil
}

// Scan returns up to limit (> 0) state entries with prefix whose key is greater than
// after, in key order: a ZRANGE BYLEX over the context's key set and an HMGET, in one
// script.
func (r *Redis) Scan(ctx context.Context, contextID string, prefix, after []byte, limit int) ([]KV, error) {
	if limit <= 0 {
		return nil, errs.Param("limit", "must be positive")
	}
	if err := r.enter(ctx); err != nil {
		return nil, err
	}
	if !validID(contextID) {
		return nil, notFoundContext(contextID)
	}
	lo, hi := lexRange(prefix, after)
	k := r.ctxKeys(contextID)
	v, err := r.run(ctx, scripts.scan, "scan state", []string{k.head, k.state, k.keys}, lo, hi, limit)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, notFoundContext(contextID)
	}
	flat, _ := v.([]any)
	kvs := make([]KV, 0, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		key, _ := flat[i].(string)
		val, _ := flat[i+1].(string)
		kvs = append(kvs, KV{Key: []byte(key), Value: []byte(val)})
	}
	return kvs, nil
}

// lexRange returns the ZRANGE BYLEX bounds of the keys with prefix after after.
func lexRange(prefix, after []byte) (lo, hi string) {
	lo = "[" + string(prefix)
	if len(prefix) == 0 {
		lo = "-"
	}
	if len(after) > 0 && string(after) >= string(prefix) {
		lo = "(" + string(after)
	}
	hi = "+"
	if end := prefixEnd(prefix); end != nil {
		hi = "(" + string(end)
	}
	return lo, hi
}

// StateSize returns the number of state keys and their key+value bytes, which the
// commit script keeps exact in the head.
func (r *Redis) StateSize(ctx context.Context, contextID string) (int64, int64, error) {
	if err := r.enter(ctx); err != nil {
		return 0, 0, err
	}
	h, err := r.readHead(ctx, contextID)
	return h.keys, h.bytes, err
}

// TxLog returns up to limit (> 0) txs of a context with seq >= from, in order.
func (r *Redis) TxLog(ctx context.Context, contextID string, from uint64, limit int) ([]Tx, error) {
	if limit <= 0 {
		return nil, errs.Param("limit", "must be positive")
	}
	if err := r.enter(ctx); err != nil {
		return nil, err
	}
	if !validID(contextID) {
		return nil, notFoundContext(contextID)
	}
	k := r.ctxKeys(contextID)
	v, err := r.run(ctx, scripts.txlog, "read tx log", []string{k.head, k.txs}, maxSeqArg(from), limit)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, notFoundContext(contextID)
	}
	flat, _ := v.([]any)
	txs := make([]Tx, 0, len(flat))
	for _, e := range flat {
		s, _ := e.(string)
		tx, err := decodeTx([]byte(s))
		if err != nil {
			return nil, errs.Wrap(errs.Internal, err, "store: decode tx of %s", contextID)
		}
		txs = append(txs, tx)
	}
	return txs, nil
}

// Idempotent returns the record under an idempotency key of a context, kept or
// expiring.
func (r *Redis) Idempotent(ctx context.Context, contextID, key string) (Idempotency, bool, error) {
	if err := r.enter(ctx); err != nil {
		return Idempotency{}, false, err
	}
	if !validID(contextID) {
		return Idempotency{}, false, notFoundContext(contextID)
	}
	k := r.ctxKeys(contextID)
	pipe := r.rdb.Pipeline()
	exists := pipe.Exists(ctx, k.head)
	kept := pipe.HGet(ctx, k.idem, key)
	expiring := pipe.Get(ctx, k.idemTTL+key)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Idempotency{}, false, redisx.Err(err, "read idempotency record")
	}
	if exists.Val() == 0 {
		return Idempotency{}, false, notFoundContext(contextID)
	}
	v := kept.Val()
	if kept.Err() != nil {
		v = expiring.Val()
	}
	if v == "" {
		return Idempotency{}, false, nil
	}
	var rec Idempotency
	if err := json.Unmarshal([]byte(v), &rec); err != nil {
		return Idempotency{}, false, errs.Wrap(errs.Internal, err, "store: decode idempotency record")
	}
	return rec, true, nil
}

// Events returns up to limit events with seq >= from from the context's history
// stream, skipping expired ones, and the oldest seq it still holds (0 if none).
func (r *Redis) Events(ctx context.Context, contextID string, from uint64, limit int) ([]Event, uint64, error) {
	if limit <= 0 {
		return nil, 0, errs.Param("limit", "must be positive")
	}
	if err := r.enter(ctx); err != nil {
		return nil, 0, err
	}
	if !validID(contextID) {
		return nil, 0, notFoundContext(contextID)
	}
	k := r.ctxKeys(contextID)
	v, err := r.run(ctx, scripts.events, "read events", []string{k.head, k.events}, maxSeqArg(from), limit, r.cutoffMs())
	if err != nil {
		return nil, 0, err
	}
	if v == nil {
		return nil, 0, notFoundContext(contextID)
	}
	flat, _ := v.([]any)
	if len(flat) == 0 {
		return nil, 0, errs.E(errs.Internal, "store: events script returned nothing")
	}
	oldest, _ := flat[0].(int64)
	var evs []Event
	for _, e := range flat[1:] {
		s, _ := e.(string)
		ev, err := decodeEvent([]byte(s))
		if err != nil {
			return nil, 0, errs.Wrap(errs.Internal, err, "store: decode event of %s", contextID)
		}
		evs = append(evs, ev)
	}
	return evs, uint64(oldest), nil
}

package store

import (
	"bytes"
	"context"

	"github.com/cockroachdb/pebble/v2"

	"github.com/circlegate/circlegate/errs"
)

// PutRecord stores value under (tenant, kind, id), durably.
func (p *Pebble) PutRecord(ctx context.Context, tenant, kind, id string, value []byte) error {
	return p.putRecord(ctx, tenant, kind, id, value, pebble.Sync)
}

var _ LazyRecordPutter = (*Pebble)(nil)

// PutRecordLazy stores value under (tenant, kind, id) without waiting for the WAL
// sync: the record is in the WAL's buffer, and the next synced write (any commit)
// or Close makes it durable.
func (p *Pebble) PutRecordLazy(ctx context.Context, tenant, kind, id string, value []byte) error {
	return p.putRecord(ctx, tenant, kind, id, value, pebble.NoSync)
}

func (p *Pebble) putRecord(ctx context.Context, tenant, kind, id string, value []byte, opts *pebble.WriteOptions) error {
	if kind == "" || id == "" {
		return errs.Param("id", "record kind and id must not be empty")
	}
	if err := p.enter(ctx); err != nil {
		return err
	}
	defer p.exit()
	k := recordKey(tenant, kind, id)
	defer p.locks.lock(string(k))()
	b := p.db.NewBatch()
	defer b.Close()
	_ = b.Set(k, value, nil)
	if err := b.Commit(opts); err != nil {
		return errs.Wrap(errs.Internal, err, "store: commit batch")
	}
	return nil
}

// GetRecord returns the record under (tenant, kind, id).
func (p *Pebble) GetRecord(ctx context.Context, tenant, kind, id string) ([]byte, bool, error) {
	if err := p.enter(ctx); err != nil {
		return nil, false, err
	}
	defer p.exit()
	return p.get(recordKey(tenant, kind, id))
}

// DeleteRecord removes the record under (tenant, kind, id), durably.
func (p *Pebble) DeleteRecord(ctx context.Context, tenant, kind, id string) (bool, error) {
	if err := p.enter(ctx); err != nil {
		return false, err
	}
	defer p.exit()
	k := recordKey(tenant, kind, id)
	defer p.locks.lock(string(k))()
	_, found, err := p.get(k)
	if err != nil || !found {
		return false, err
	}
	b := p.db.NewBatch()
	_ = b.Delete(k, nil)
	return true, commit(b)
}

var _ RecordsDeleter = (*Pebble)(nil)

// DeleteRecords removes the records of ids in one synced batch. Unlike DeleteRecord
// it does not read them first: deleting a missing key changes nothing.
func (p *Pebble) DeleteRecords(ctx context.Context, tenant, kind string, ids []string) error {
	if kind == "" {
		return errs.Param("kind", "record kind must not be empty")
	}
	if len(ids) == 0 {
		return nil
	}
	if err := p.enter(ctx); err != nil {
		return err
	}
	defer p.exit()
	b := p.db.NewBatch()
	for _, id := range ids {
		_ = b.Delete(recordKey(tenant, kind, id), nil)
	}
	return commit(b)
}

// ListRecords returns up to limit (> 0) records of (tenant, kind) after the id after,
// ascending, or before it when reverse is set.
func (p *Pebble) ListRecords(ctx context.Context, tenant, kind, after string, limit int, reverse bool) ([]Record, error) {
	var recs []Record
	err := p.listRecords(ctx, tenant, kind, after, limit, reverse, func(id []byte, it *pebble.Iterator) {
		recs = append(recs, Record{ID: string(id), Value: bytes.Clone(it.Value())})
	})
	return recs, err
}

var _ RecordIDLister = (*Pebble)(nil)

// ListRecordIDs is ListRecords without the values.
func (p *Pebble) ListRecordIDs(ctx context.Context, tenant, kind, after string, limit int, reverse bool) ([]string, error) {
	var ids []string
	err := p.listRecords(ctx, tenant, kind, after, limit, reverse, func(id []byte, _ *pebble.Iterator) {
		ids = append(ids, string(id))
	})
	return ids, err
}

// listRecords calls add for each of up to limit records of ListRecords, with its id
// and the iterator positioned on it.
func (p *Pebble) listRecords(ctx context.Context, tenant, kind, after string, limit int, reverse bool, add func(id []byte, it *pebble.Iterator)) error {
	if limit <= 0 {
		return errs.Param("limit", "must be positive")
	}
	if err := p.enter(ctx); err != nil {
		return err
	}
	defer p.exit()
	base := key(kindRecord, tenant, kind)
	opts := &pebble.IterOptions{LowerBound: base, UpperBound: prefixEnd(base)}
	if after != "" {
		if reverse {
			opts.UpperBound = cat(base, []byte(after)...)
		} else {
			opts.LowerBound = append(cat(base, []byte(after)...), 0)
		}
	}
	it, err := p.db.NewIter(opts)
	if err != nil {
		return errs.Wrap(errs.Internal, err, "store: iterate records")
	}
	first, next := it.First, it.Next
	if reverse {
		first, next = it.Last, it.Prev
	}
	n := 0
	for ok := first(); ok && n < limit; ok = next() {
		add(it.Key()[len(base):], it)
		n++
	}
	return closeIter(it)
}

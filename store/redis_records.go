package store

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/internal/redisx"
)

func (r *Redis) recordKeys(tenant, kind string) []string {
	b := r.tenantBase(tenant)
	return []string{b + "r:" + kind, b + "ri:" + kind}
}

// PutRecord stores value under (tenant, kind, id), with its id in the kind's index.
func (r *Redis) PutRecord(ctx context.Context, tenant, kind, id string, value []byte) error {
	if kind == "" || id == "" {
		return errs.Param("id", "record kind and id must not be empty")
	}
	if err := checkTenant(tenant); err != nil {
		return err
	}
	if err := r.enter(ctx); err != nil {
		return err
	}
	_, err := r.run(ctx, scripts.putRecord, "put record", r.recordKeys(tenant, kind), id, value)
	return err
}

// GetRecord returns the record under (tenant, kind, id).
func (r *Redis) GetRecord(ctx context.Context, tenant, kind, id string) ([]byte, bool, error) {
	if err := r.enter(ctx); err != nil {
		return nil, false, err
	}
	v, err := r.rdb.HGet(ctx, r.recordKeys(tenant, kind)[0], id).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, redisx.Err(err, "get record")
	}
	return v, true, nil
}

// DeleteRecord removes the record under (tenant, kind, id).
func (r *Redis) DeleteRecord(ctx context.Context, tenant, kind, id string) (bool, error) {
	if err := r.enter(ctx); err != nil {
		return false, err
	}
	v, err := r.run(ctx, scripts.delRecord, "delete record", r.recordKeys(tenant, kind), id)
	return v == int64(1), err
}

// ListRecords returns up to limit (> 0) records of (tenant, kind) after the id after,
// ascending, or before it when reverse is set.
func (r *Redis) ListRecords(ctx context.Context, tenant, kind, after string, limit int, reverse bool) ([]Record, error) {
	if limit <= 0 {
		return nil, errs.Param("limit", "must be positive")
	}
	if err := r.enter(ctx); err != nil {
		return nil, err
	}
	lo, hi := "-", "+"
	switch {
	case after != "" && reverse:
		hi = "(" + after
	case after != "":
		lo = "(" + after
	}
	v, err := r.run(ctx, scripts.listRecords, "list records", r.recordKeys(tenant, kind), lo, hi, limit, boolArg(reverse))
	if err != nil {
		return nil, err
	}
	flat, _ := v.([]any)
	recs := make([]Record, 0, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		id, _ := flat[i].(string)
		val, _ := flat[i+1].(string)
		recs = append(recs, Record{ID: id, Value: []byte(val)})
	}
	return recs, nil
}

package store

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/internal/redisx"
)

// CreateContext stores c with its genesis tx in three steps, because the context's
// keys and its tenant's index live in different cluster slots:
//
//  1. the app must exist (a read, to fail early);
//  2. one script on the context's slot refuses an existing id and writes the head,
//     the genesis state, tx and events, and publishes the events;
//  3. one script on the tenant's slot checks the app again and adds the context to
//     the tenant's list and to the app's contexts. If the app is gone (DeleteApp ran
//     between 1 and 3), step 2 is undone and the error is NotFound.
//
// DeleteApp refuses while step 3 has run, and after it step 3 fails, so no context
// outlives its app. A crash between 2 and 3 leaves a context that no listing shows
// and whose id was never returned.
func (r *Redis) CreateContext(ctx context.Context, c Context, genesis Tx) error {
	if err := checkNewContext(&c, &genesis); err != nil {
		return err
	}
	if !validID(c.ID) {
		return errs.Param("contextId", "must not contain { or }")
	}
	if err := checkTenant(c.Tenant); err != nil {
		return err
	}
	if err := r.enter(ctx); err != nil {
		return err
	}
	if _, err := r.GetApp(ctx, c.Tenant, c.AppID); err != nil {
		return err
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = time.Now().UTC()
	}
	members, err := json.Marshal(nonNilMembers(c.Members))
	if err != nil {
		return errs.Wrap(errs.Internal, err, "store: encode members")
	}
	k := r.ctxKeys(c.ID)
	args := []any{c.Tenant, c.AppID, c.Owner, members, boolArg(c.Public), c.CreatedAt.UnixNano(), genesis.Hash,
		encodeTx(&genesis), len(genesis.Events), r.hist.MaxEvents, r.cutoffMs()}
	args = r.appendPublish(args, c.Tenant, c.ID, genesis.Events)
	args = append(args, len(genesis.Writes))
	args = appendWriteArgs(args, genesis.Writes)
	args = appendEventArgs(args, genesis.Events)
	v, err := r.run(ctx, scripts.create, "create context", []string{k.head, k.state, k.keys, k.txs, k.events}, args...)
	if err != nil {
		return err
	}
	if v == "conflict" {
		return errs.E(errs.Conflict, "context %s exists", c.ID)
	}
	linked, err := r.rdb.Eval(ctx, linkScript, []string{r.appsKey(c.Tenant), r.useKey(c.Tenant, c.AppID), r.tenantCtxKey(c.Tenant)}, c.AppID, c.ID).Int()
	if err == nil && linked == 1 {
		return nil
	}
	if err != nil {
		err = redisx.Err(err, "link context")
	} else {
		err = errs.E(errs.NotFound, "app %s not found", c.AppID)
	}
	if _, uerr := r.run(context.WithoutCancel(ctx), scripts.del, "undo create", r.delKeys(c.ID), c.Tenant); uerr != nil {
		return uerr
	}
	return err
}

// linkScript is step 3 of CreateContext; it is short and rare, so it is sent with EVAL.
const linkScript = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], 0, ARGV[2])
return 1`

func nonNilMembers(m []string) []string {
	if m == nil {
		return []string{}
	}
	return m
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// appendPublish appends the channel and message args of events (empty when none).
func (r *Redis) appendPublish(args []any, tenant, contextID string, evs []Event) []any {
	if len(evs) == 0 {
		return append(args, "", "")
	}
	return append(args, RedisEventChannel(r.prefix, tenant, contextID), EncodeEventMessage(tenant, evs))
}

func appendWriteArgs(args []any, ws []Write) []any {
	for _, w := range ws {
		if w.Delete {
			args = append(args, "d", w.Key)
		} else {
			args = append(args, "s", w.Key, w.Value)
		}
	}
	return args
}

func appendEventArgs(args []any, evs []Event) []any {
	for i := range evs {
		args = append(args, evs[i].Seq, evs[i].Time.UnixMilli(), encodeEvent(&evs[i]))
	}
	return args
}

func (r *Redis) delKeys(id string) []string {
	k := r.ctxKeys(id)
	return []string{k.head, k.state, k.keys, k.txs, k.events, k.idem}
}

// GetContext returns a context, or an errs.NotFound error (also when it belongs to
// another tenant).
func (r *Redis) GetContext(ctx context.Context, tenant, contextID string) (Context, error) {
	if err := r.enter(ctx); err != nil {
		return Context{}, err
	}
	h, err := r.tenantHead(ctx, tenant, contextID)
	return h.Context, err
}

// ListContexts returns a tenant's contexts ordered by id: the tenant's sorted set of
// ids, then one pipelined read per page of heads.
func (r *Redis) ListContexts(ctx context.Context, tenant string) ([]Context, error) {
	if err := r.enter(ctx); err != nil {
		return nil, err
	}
	ids, err := r.rdb.ZRange(ctx, r.tenantCtxKey(tenant), 0, -1).Result()
	if err != nil {
		return nil, redisx.Err(err, "list contexts")
	}
	out := make([]Context, 0, len(ids))
	for from := 0; from < len(ids); from += 256 {
		page := ids[from:min(from+256, len(ids))]
		pipe := r.rdb.Pipeline()
		for _, id := range page {
			pipe.HMGet(ctx, r.ctxKeys(id).head, headFields...)
		}
		cmds, err := pipe.Exec(ctx)
		if err != nil {
			return nil, redisx.Err(err, "list contexts")
		}
		for i, cmd := range cmds {
			h, err := decodeHead(page[i], cmd.(interface{ Val() []any }).Val())
			switch {
			case errs.Is(err, errs.NotFound) || (err == nil && h.Tenant != tenant):
				continue // deleted since the list was read
			case err != nil:
				return nil, err
			}
			out = append(out, h.Context)
		}
	}
	return out, nil
}

// DeleteContext removes a context in two steps: one script deletes its keys (from
// then on it does not exist), then its entries in the tenant's list and its app's
// contexts go. Readers skip list entries whose head is gone, and DeleteApp drops
// such entries, so a crash between the steps hides nothing and blocks nothing.
func (r *Redis) DeleteContext(ctx context.Context, tenant, contextID string) error {
	if err := r.enter(ctx); err != nil {
		return err
	}
	if !validID(contextID) {
		return notFoundContext(contextID)
	}
	v, err := r.run(ctx, scripts.del, "delete context", r.delKeys(contextID), tenant)
	if err != nil {
		return err
	}
	app, ok := v.(string)
	if !ok {
		return notFoundContext(contextID)
	}
	pipe := r.rdb.Pipeline()
	pipe.ZRem(ctx, r.tenantCtxKey(tenant), contextID)
	pipe.SRem(ctx, r.useKey(tenant, app), contextID)
	_, err = pipe.Exec(context.WithoutCancel(ctx))
	return redisx.Err(err, "unlist context")
}

// UpdateMembers adds, then removes members, and appends ev to the history: it reads
// the head, computes the new members (as Pebble does) and writes them with a script
// that checks nothing changed in between, trying again when something did.
func (r *Redis) UpdateMembers(ctx context.Context, tenant, contextID string, add, remove []string, ev Event) (Context, Event, error) {
	if err := r.enter(ctx); err != nil {
		return Context{}, Event{}, err
	}
	k := r.ctxKeys(contextID)
	for range 100 {
		h, err := r.tenantHead(ctx, tenant, contextID)
		if err != nil {
			return Context{}, Event{}, err
		}
		h.Members = updateMembers(h.Members, add, remove)
		members, _ := json.Marshal(nonNilMembers(h.Members))
		ev.ContextID, ev.Seq = contextID, h.EventSeq+1
		args := []any{tenant, h.version, strconv.FormatUint(h.EventSeq, 10), members, ev.Seq, ev.Time.UnixMilli(),
			encodeEvent(&ev), r.hist.MaxEvents, r.cutoffMs()}
		args = r.appendPublish(args, tenant, contextID, []Event{ev})
		v, err := r.run(ctx, scripts.members, "update members", []string{k.head, k.events}, args...)
		switch {
		case err != nil:
			return Context{}, Event{}, err
		case v == "notfound":
			return Context{}, Event{}, notFoundContext(contextID)
		case v == "ok":
			h.EventSeq = ev.Seq
			return h.Context, ev, nil
		}
	}
	return Context{}, Event{}, errs.E(errs.Overloaded, "context %s is too contended, try again", contextID)
}

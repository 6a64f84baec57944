package store

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/circlegate/circlegate/errs"
)

// CreateContext stores c, its genesis tx (writes, events, log entry) and its index
// entries in one synced batch. It holds the locks of the context and of its app, so
// a concurrent DeleteApp either sees the new context or runs first.
func (p *Pebble) CreateContext(ctx context.Context, c Context, genesis Tx) error {
	if err := checkNewContext(&c, &genesis); err != nil {
		return err
	}
	if err := p.enter(ctx); err != nil {
		return err
	}
	defer p.exit()
	defer p.locks.lock(contextLockName(c.ID), appLockName(c.Tenant, c.AppID))()
	if _, err := p.appValue(appKey(c.Tenant, c.AppID), c.AppID); err != nil {
		return err
	}
	if _, ok, err := p.get(headKey(c.ID)); err != nil || ok {
		if err == nil {
			err = errs.E(errs.Conflict, "context %s exists", c.ID)
		}
		return err
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = time.Now().UTC()
	}
	h := head{Context: c, FirstEvent: 1}
	h.Seq, h.RootHash, h.EventSeq = 0, "", 0
	b := p.db.NewBatch()
	if err := p.createBatch(b, &h, &genesis); err != nil {
		b.Close()
		return err
	}
	if err := commit(b); err != nil {
		return err
	}
	p.heads.put(h.ID, h)
	return nil
}

// checkNewContext checks the caller's context and genesis tx agree; a mismatch is a
// bug of the caller, so its kind is Internal.
func checkNewContext(c *Context, g *Tx) error {
	switch {
	case c.ID == "":
		return errs.Param("contextId", "is empty")
	case c.Tenant == "":
		return errs.Param("tenant", "is empty")
	case g.Seq != 0 || g.PrevHash != GenesisPrevHash || g.Hash != TxHash(g):
		return errs.E(errs.Internal, "store: genesis tx of %s is not a valid genesis", c.ID)
	case c.Seq != 0 || c.RootHash != g.Hash || c.EventSeq != uint64(len(g.Events)):
		return errs.E(errs.Internal, "store: context %s does not match its genesis tx", c.ID)
	}
	return nil
}

func (p *Pebble) createBatch(b *pebble.Batch, h *head, g *Tx) error {
	if err := p.applyTx(b, h, g); err != nil {
		return err
	}
	_ = b.Set(tenantKey(h.Tenant, h.ID), nil, nil)
	_ = b.Set(usageKey(h.Tenant, h.AppID, h.ID), nil, nil)
	return putHead(b, h)
}

// GetContext returns a context, or an errs.NotFound error (also when it belongs to
// another tenant).
func (p *Pebble) GetContext(ctx context.Context, tenant, contextID string) (Context, error) {
	if err := p.enter(ctx); err != nil {
		return Context{}, err
	}
	defer p.exit()
	h, err := p.tenantHead(tenant, contextID)
	return h.Context, err
}

// ListContexts returns a tenant's contexts ordered by id: a scan of the tenant's index
// and one point read per context.
func (p *Pebble) ListContexts(ctx context.Context, tenant string) ([]Context, error) {
	if err := p.enter(ctx); err != nil {
		return nil, err
	}
	defer p.exit()
	ids, err := p.tenantContexts(tenant)
	if err != nil {
		return nil, err
	}
	out := make([]Context, 0, len(ids))
	for _, id := range ids {
		h, err := p.tenantHead(tenant, id)
		if errs.Is(err, errs.NotFound) {
			continue // deleted since the index was read
		}
		if err != nil {
			return nil, err
		}
		out = append(out, h.Context)
	}
	return out, nil
}

func (p *Pebble) tenantContexts(tenant string) ([]string, error) {
	prefix := key(kindTenant, tenant)
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "store: iterate contexts")
	}
	var ids []string
	for ok := it.First(); ok; ok = it.Next() {
		ids = append(ids, string(it.Key()[len(prefix):]))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "store: list contexts")
	}
	return ids, nil
}

// DeleteContext removes a context's head, index entries, state, log, events and
// idempotency records with range deletions in one synced batch.
func (p *Pebble) DeleteContext(ctx context.Context, tenant, contextID string) error {
	if err := p.enter(ctx); err != nil {
		return err
	}
	defer p.exit()
	defer p.locks.lock(contextLockName(contextID))()
	h, err := p.lockedTenantHead(tenant, contextID)
	if err != nil {
		return err
	}
	p.heads.del(contextID)
	b := p.db.NewBatch()
	_ = b.Delete(headKey(contextID), nil)
	_ = b.Delete(hotKey(contextID), nil)
	_ = b.Delete(tenantKey(h.Tenant, contextID), nil)
	_ = b.Delete(usageKey(h.Tenant, h.AppID, contextID), nil)
	for _, k := range []byte{kindState, kindTx, kindEvent, kindIdem} {
		prefix := key(k, contextID)
		_ = b.DeleteRange(prefix, prefixEnd(prefix), nil)
	}
	err = commit(b)
	if p.state != nil { // also after a failure: Pebble may hold either
		p.state.dropPrefix(key(kindState, contextID))
		p.state.dropPrefix(key(kindIdem, contextID))
	}
	return err
}

// UpdateMembers adds, then removes members (a key in both ends up removed), keeps
// their order, and appends ev to the history in the same synced batch.
func (p *Pebble) UpdateMembers(ctx context.Context, tenant, contextID string, add, remove []string, ev Event) (Context, Event, error) {
	if err := p.enter(ctx); err != nil {
		return Context{}, Event{}, err
	}
	defer p.exit()
	defer p.locks.lock(contextLockName(contextID))()
	h, err := p.lockedTenantHead(tenant, contextID)
	if err != nil {
		return Context{}, Event{}, err
	}
	h.Members = updateMembers(h.Members, add, remove)
	ev.ContextID, ev.Seq = contextID, h.EventSeq+1
	b := p.db.NewBatch()
	err = p.appendEvents(b, &h, []Event{ev}, true)
	if err == nil {
		err = putHead(b, &h)
	}
	if err != nil {
		b.Close()
		return Context{}, Event{}, err
	}
	if err := commit(b); err != nil {
		p.heads.del(contextID)
		return Context{}, Event{}, err
	}
	p.heads.put(contextID, h)
	return h.Context, ev, nil
}

func updateMembers(members, add, remove []string) []string {
	out := make([]string, 0, len(members)+len(add))
	for _, m := range slices.Concat(members, add) {
		if !slices.Contains(out, m) && !slices.Contains(remove, m) {
			out = append(out, m)
		}
	}
	return out
}

// EachContext calls fn for every context of every tenant, in id order; it is how
// `circlegate verify` walks a data dir without knowing its tenants.
func (p *Pebble) EachContext(ctx context.Context, fn func(Context) error) error {
	if err := p.enter(ctx); err != nil {
		return err
	}
	defer p.exit()
	prefix := []byte{kindHead}
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return errs.Wrap(errs.Internal, err, "store: iterate contexts")
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		var h head
		if err := json.Unmarshal(it.Value(), &h); err != nil {
			return errs.Wrap(errs.Internal, err, "store: decode context %s", it.Key()[1:])
		}
		if err := p.overlayHead(&h); err != nil {
			return err
		}
		if err := fn(h.Context); err != nil {
			return err
		}
	}
	return it.Error()
}

package execution

import (
	"context"
	"sync"
	"time"

	"github.com/circlegate/circlegate/store"
)

// metaTTL is how long a fleet gateway uses a context it read to check a caller's role
// before it queues a job (queueCheck).
const metaTTL = time.Second

// maxMetas bounds the contexts a metaCache holds (a few hundred bytes each).
const maxMetas = 100000

// metaCache holds the contexts a fleet gateway read for queueCheck, each for metaTTL.
// Only the check before queueing uses it: the worker checks the caller's role again on
// the context as it executes the job, so an entry that went stale (a member removed,
// the context deleted, through another gateway) delays the refusal to the worker and
// lets nothing through. Changes made through this process forget their entry at once.
type metaCache struct {
	mu sync.Mutex
	m  map[metaKey]metaEntry
}

type metaKey struct{ tenant, id string }

type metaEntry struct {
	meta    store.Context
	expires time.Time
}

func newMetaCache() *metaCache { return &metaCache{m: make(map[metaKey]metaEntry)} }

func (c *metaCache) get(tenant, id string, now time.Time) (store.Context, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[metaKey{tenant, id}]
	if !ok || !now.Before(e.expires) {
		return store.Context{}, false
	}
	return e.meta, true
}

func (c *metaCache) put(tenant string, meta store.Context, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxMetas {
		for k, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxMetas {
			clear(c.m)
		}
	}
	c.m[metaKey{tenant, meta.ID}] = metaEntry{meta: meta, expires: now.Add(metaTTL)}
}

func (c *metaCache) forget(tenant, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, metaKey{tenant, id})
}

// queueCheck refuses, before it is queued, a job on context id that c may not run:
// the context must exist and c must be a member or the owner. On a store that reads
// over the network (a fleet) it may use the context as this process read it up to
// metaTTL before, which spares a Redis round trip per job; see metaCache.
func (s *Service) queueCheck(ctx context.Context, tenant string, c Caller, id string) error {
	if s.metas == nil {
		_, err := s.context(ctx, tenant, c, id, roleMember)
		return err
	}
	now := time.Now()
	meta, ok := s.metas.get(tenant, id, now)
	if !ok {
		var err error
		if meta, err = s.store.GetContext(ctx, tenant, id); err != nil {
			return err
		}
		s.metas.put(tenant, meta, now)
	}
	return checkRole(c, &meta, roleMember)
}

// forgetMeta drops what queueCheck remembers of a context this process changed.
func (s *Service) forgetMeta(tenant, id string) {
	if s.metas != nil {
		s.metas.forget(tenant, id)
	}
}

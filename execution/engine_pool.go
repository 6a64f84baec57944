package execution

import (
	"context"
	"sync"

	"github.com/circlegate/circlegate/errs"
)

type enginePoolKey struct{ tenant, appID string }

// enginePool holds the instances of one (tenant, app). Instances are never shared
// between tenants: a guest may keep globals between calls. At most PoolSize
// instances live at once (slots); a call that finds none free waits for one rather
// than instantiating more, since a Go guest costs milliseconds and megabytes to start
// and execution is CPU-bound anyway.
type enginePool struct {
	app     *engineApp
	slots   chan struct{} // one token per live instance
	mu      sync.Mutex
	idle    []*engineInstance
	evicted bool
}

func newEnginePool(a *engineApp, size int) *enginePool {
	return &enginePool{app: a, slots: make(chan struct{}, size)}
}

// pool returns the pool of the call's (tenant, app), compiling the app if needed. It
// takes a reference on the app that the caller gives back with app.unref.
func (e *Engine) pool(ctx context.Context, c *Call) (*enginePool, error) {
	key := enginePoolKey{c.Tenant, c.AppID}
	e.mu.Lock()
	p, ok := e.pools[key]
	if ok {
		p.app.ref() // under e.mu: Evict cannot close the app between lookup and use
	}
	e.mu.Unlock()
	if ok {
		return p, nil
	}
	for {
		a, err := e.app(ctx, c)
		if err != nil {
			return nil, err
		}
		e.mu.Lock()
		if p, ok := e.pools[key]; ok {
			p.app.ref()
			e.mu.Unlock()
			return p, nil
		}
		if e.apps[c.AppID] != a && !e.closed {
			e.mu.Unlock()
			continue // evicted while it compiled: compile again
		}
		p = newEnginePool(a, e.cfg.PoolSize)
		if !e.closed {
			e.pools[key] = p
		}
		a.ref()
		e.mu.Unlock()
		return p, nil
	}
}

// appInUse reports whether a pool still uses appID. e.mu must be held.
func (e *Engine) appInUse(appID string) bool {
	for k := range e.pools {
		if k.appID == appID {
			return true
		}
	}
	return false
}

// acquire waits for a free slot, then takes an idle instance or starts a new one. An
// idle instance whose memory already exceeds this call's memory_pages is closed
// instead.
func (e *Engine) acquire(ctx context.Context, p *enginePool, c *Call, lim *Limits) (*engineInstance, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, errs.Wrap(errs.Overloaded, ctx.Err(), "no instance of app %s became free before the call's deadline", c.AppID)
	}
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			in, err := e.instantiate(ctx, p, c, lim)
			if err != nil {
				<-p.slots
			}
			return in, err
		}
		in := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if in.memPages() <= lim.MemoryPages {
			return in, nil
		}
		in.close()
	}
}

// release returns a healthy instance to its pool, or closes it when the pool is
// gone, and frees its slot.
func (e *Engine) release(p *enginePool, in *engineInstance) {
	defer func() { <-p.slots }()
	p.mu.Lock()
	if !p.evicted {
		p.idle = append(p.idle, in)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	in.close()
}

// discard closes the instance of a failed call and frees its slot.
func (e *Engine) discard(p *enginePool, in *engineInstance, c *Call, err error) {
	defer func() { <-p.slots }()
	e.discarded.Add(1)
	in.close()
	e.log.Debug("instance discarded", "tenant", c.Tenant, "app_id", c.AppID, "method", c.Method, "err", err)
}

func (p *enginePool) evict() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.evicted = nil, true
	p.mu.Unlock()
	for _, in := range idle {
		in.close()
	}
}

func (p *enginePool) isEvicted() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.evicted
}

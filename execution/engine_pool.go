package execution

import (
	"context"
	"sync"
)

type enginePoolKey struct{ tenant, appID string }

// enginePool holds the idle instances of one (tenant, app). Instances are never
// shared between tenants: a guest may keep globals between calls.
type enginePool struct {
	app     *engineApp
	mu      sync.Mutex
	idle    []*engineInstance
	evicted bool
}

// pool returns the pool of the call's (tenant, app), compiling the app if needed.
func (e *Engine) pool(ctx context.Context, c *Call) (*enginePool, error) {
	key := enginePoolKey{c.Tenant, c.AppID}
	e.mu.Lock()
	p, ok := e.pools[key]
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
			e.mu.Unlock()
			return p, nil
		}
		if e.apps[c.AppID] != a && !e.closed {
			e.mu.Unlock()
			continue // evicted while it compiled: compile again
		}
		p = &enginePool{app: a}
		if !e.closed {
			e.pools[key] = p
		}
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

// acquire takes an idle instance or starts a new one. An idle instance whose memory
// already exceeds this call's memory_pages is closed instead.
func (e *Engine) acquire(ctx context.Context, p *enginePool, c *Call, lim *Limits) (*engineInstance, error) {
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			return e.instantiate(ctx, p, c, lim)
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

// release returns a healthy instance to its pool, or closes it when the pool is full
// or gone.
func (e *Engine) release(p *enginePool, in *engineInstance) {
	p.mu.Lock()
	if !p.evicted && len(p.idle) < e.cfg.PoolSize {
		p.idle = append(p.idle, in)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	in.close()
}

// discard closes the instance of a failed call.
func (e *Engine) discard(in *engineInstance, c *Call, err error) {
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

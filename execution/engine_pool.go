package execution

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circlegate/circlegate/errs"
)

type enginePoolKey struct{ tenant, appID string }

// enginePool holds the instances of one (tenant, app). Instances are never shared
// between tenants: a guest may keep globals between calls. At most PoolSize calls
// hold or wait for an instance at once (slots), and at most PoolSize instances
// live. A Go guest costs milliseconds and megabytes to start (25 ms on this
// project's VM, where its first page faults are slow), so a call that finds every
// instance busy does not start one itself: it waits for the first instance
// released, while one more starts in the background if the pool may still grow.
// Only a call that finds no instance at all starts one and waits for it.
type enginePool struct {
	app   *engineApp
	size  int
	slots chan struct{} // one token per call that holds or waits for an instance

	mu       sync.Mutex
	idle     []*engineInstance
	live     int                    // instances idle, in use or starting
	starting bool                   // a start in the background runs
	stalled  bool                   // the last start in the background failed: none until an instance comes back
	waiters  []chan *engineInstance // calls waiting for an instance, in arrival order
	evicted  bool
}

func newEnginePool(a *engineApp, size int) *enginePool {
	return &enginePool{app: a, size: size, slots: make(chan struct{}, size)}
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

// acquire waits for a free slot, then takes an idle instance, waits for a busy one
// (see enginePool), or starts one. An instance whose memory already exceeds this
// call's memory_pages is closed instead.
func (e *Engine) acquire(ctx context.Context, p *enginePool, c *Call, lim *Limits) (*engineInstance, error) {
	if err := p.app.fits(lim); err != nil {
		return nil, err // no instance would do: fail before waiting for one
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, noInstance(ctx, c)
	}
	for {
		in, wait, err := e.take(ctx, p, c, lim)
		if err != nil {
			<-p.slots
			return nil, err
		}
		if in == nil {
			select {
			case in = <-wait:
			case <-ctx.Done():
				p.leave(wait)
				<-p.slots
				return nil, noInstance(ctx, c)
			}
			if in == nil {
				continue // woken to look again: an instance was lost
			}
		}
		if ctx.Err() != nil { // the call gave up as the instance came: keep it for the next
			p.put(in)
			<-p.slots
			return nil, noInstance(ctx, c)
		}
		if in.memPages() <= lim.MemoryPages {
			return in, nil
		}
		in.close()
		p.lost()
	}
}

// noInstance is the error of a call whose context ended before it had an instance.
func noInstance(ctx context.Context, c *Call) error {
	return errs.Wrap(errs.Overloaded, ctx.Err(), "no instance of app %s became free before the call's deadline", c.AppID)
}

// take returns an idle instance, or a channel to wait on for one (starting one more
// in the background when the pool may grow), or an instance it started itself when
// the pool has none at all (or was evicted).
func (e *Engine) take(ctx context.Context, p *enginePool, c *Call, lim *Limits) (*engineInstance, chan *engineInstance, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		in := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return in, nil, nil
	}
	if p.live == 0 || p.evicted {
		p.live++
		p.mu.Unlock()
		in, err := e.instantiate(ctx, p, c, lim)
		if err != nil {
			p.lost()
			return nil, nil, err
		}
		return in, nil, nil
	}
	if p.live < p.size && !p.starting && !p.stalled {
		call, limits := *c, *lim
		p.app.ref() // the call that asks may return, and the app be evicted, before the start
		if e.background(func() { e.grow(p, call, limits) }) {
			p.live++
			p.starting = true
		} else {
			p.app.unref()
		}
	}
	wait := make(chan *engineInstance, 1)
	p.waiters = append(p.waiters, wait)
	p.mu.Unlock()
	return nil, wait, nil
}

// grow starts one more instance of p in the background, with the limits of the
// call that asked for it, and hands it to the first waiting call.
func (e *Engine) grow(p *enginePool, c Call, lim Limits) {
	defer p.app.unref()
	c.Deadline = time.Time{} // the call that asked may be long gone: only the timeout applies
	var in *engineInstance
	var err error
	if hook := growHook.Load(); hook != nil {
		err = (*hook)()
	}
	if err == nil {
		in, err = e.instantiate(e.bg, p, &c, &lim)
	}
	p.mu.Lock()
	p.starting = false
	p.stalled = err != nil // a start that fails at once must not be retried at once
	p.mu.Unlock()
	if err != nil {
		e.log.Debug("instance failed to start", "tenant", c.Tenant, "app_id", c.AppID, "err", err)
		p.lost()
		return
	}
	p.put(in)
}

// background runs f on a goroutine of its own that Close waits for, unless the
// engine is closing.
func (e *Engine) background(f func()) bool {
	e.bgMu.Lock()
	defer e.bgMu.Unlock()
	if e.bgDone {
		return false
	}
	e.bgRunning.Add(1)
	go func() {
		defer e.bgRunning.Done()
		f()
	}()
	return true
}

// growHook, if set, runs before a start in the background; tests set it to hold or
// fail the start.
var growHook atomic.Pointer[func() error]

// put hands a healthy instance to the first waiting call, or makes it idle, or
// closes it when the pool is gone.
func (p *enginePool) put(in *engineInstance) {
	p.mu.Lock()
	p.stalled = false
	if p.evicted {
		p.live--
		p.mu.Unlock()
		in.close()
		return
	}
	if wait := p.nextWaiter(); wait != nil {
		p.mu.Unlock()
		wait <- in
		return
	}
	p.idle = append(p.idle, in)
	p.mu.Unlock()
}

// lost counts an instance gone (closed, or failed to start) and wakes the first
// waiting call, which may now have to start one itself.
func (p *enginePool) lost() {
	p.mu.Lock()
	p.live--
	p.mu.Unlock()
	p.wake()
}

// leave takes a call that gave up off the waiting list; what was handed to it
// meanwhile goes to the next.
func (p *enginePool) leave(wait chan *engineInstance) {
	p.mu.Lock()
	for i, w := range p.waiters {
		if w == wait {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			p.mu.Unlock()
			return
		}
	}
	p.mu.Unlock()
	if in := <-wait; in != nil { // put or wake chose this call before it left
		p.put(in)
	} else {
		p.wake()
	}
}

// wake wakes the first waiting call, if any, to look again (see lost).
func (p *enginePool) wake() {
	p.mu.Lock()
	wait := p.nextWaiter()
	p.mu.Unlock()
	if wait != nil {
		wait <- nil
	}
}

// nextWaiter takes the first waiting call off the queue, or returns nil. p.mu is
// held.
func (p *enginePool) nextWaiter() chan *engineInstance {
	if len(p.waiters) == 0 {
		return nil
	}
	wait := p.waiters[0]
	p.waiters[0] = nil
	p.waiters = p.waiters[1:]
	return wait
}

// release returns a healthy instance to its pool (see put) and frees its slot.
func (e *Engine) release(p *enginePool, in *engineInstance) {
	defer func() { <-p.slots }()
	p.put(in)
}

// discard closes the instance of a failed call and frees its slot.
func (e *Engine) discard(p *enginePool, in *engineInstance, c *Call, err error) {
	defer func() { <-p.slots }()
	e.discarded.Add(1)
	in.close()
	p.lost()
	e.log.Debug("instance discarded", "tenant", c.Tenant, "app_id", c.AppID, "method", c.Method, "err", err)
}

// evict closes the idle instances (the busy ones close when released) and wakes
// the waiting calls, which then start their own.
func (p *enginePool) evict() {
	p.mu.Lock()
	idle, waiters := p.idle, p.waiters
	p.idle, p.waiters, p.evicted = nil, nil, true
	p.live -= len(idle)
	p.mu.Unlock()
	for _, in := range idle {
		in.close()
	}
	for _, w := range waiters {
		w <- nil
	}
}

func (p *enginePool) isEvicted() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.evicted
}

package execution

import "context"

// PoolState reports the pool of (tenant, appID): instances alive (idle, in use or
// starting), idle, whether one starts in the background, and calls waiting.
func (e *Engine) PoolState(tenant, appID string) (live, idle int, starting bool, waiting int) {
	e.mu.Lock()
	p := e.pools[enginePoolKey{tenant, appID}]
	e.mu.Unlock()
	if p == nil {
		return 0, 0, false, 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.live, len(p.idle), p.starting, len(p.waiters)
}

// SetGrowHook makes every start in the background run hook first, and fail with
// its error, until the test ends.
func SetGrowHook(t interface{ Cleanup(func()) }, hook func() error) {
	growHook.Store(&hook)
	t.Cleanup(func() { growHook.Store(nil) })
}

// Handle runs a batch of jobs as a worker does, without a queue.
func (s *Service) Handle(ctx context.Context, jobs []*Job) []Outcome { return s.handle(ctx, jobs) }

// SetRepliedHook makes every memory-queue worker run hook after its batch's callers
// have their outcomes, until the test ends.
func SetRepliedHook(t interface{ Cleanup(func()) }, hook func()) {
	repliedHook.Store(&hook)
	t.Cleanup(func() { repliedHook.Store(nil) })
}

package execution

// PoolState reports the pool of (tenant, appID): instances alive (idle, in use or
// starting), idle, and whether one starts in the background.
func (e *Engine) PoolState(tenant, appID string) (live, idle int, starting bool) {
	e.mu.Lock()
	p := e.pools[enginePoolKey{tenant, appID}]
	e.mu.Unlock()
	if p == nil {
		return 0, 0, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.live, len(p.idle), p.starting
}

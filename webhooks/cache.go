package webhooks

import (
	"context"
	"sync"
	"time"
)

// tenantConfig is one tenant's webhook secrets (those of the config file included)
// and routes, as read from the store at loaded.
type tenantConfig struct {
	secrets []secretRecord
	routes  []Route
	loaded  time.Time
}

// configCache keeps each tenant's secrets and routes for up to ttl, so that a
// delivery does not list and decode them from the store. A change through this
// Service drops the tenant's entry at once; a change through another gateway of a
// fleet is seen within ttl.
type configCache struct {
	mu      sync.Mutex
	ttl     time.Duration
	entries map[string]*tenantConfig
	gen     map[string]uint64 // bumped by drop, so a load that raced a change is not kept
}

// get returns the tenant's configuration, loading it when absent or older than ttl.
func (c *configCache) get(ctx context.Context, tenant string, now time.Time, load func(context.Context) (*tenantConfig, error)) (*tenantConfig, error) {
	c.mu.Lock()
	if e := c.entries[tenant]; e != nil && now.Sub(e.loaded) < c.ttl {
		c.mu.Unlock()
		return e, nil
	}
	gen := c.gen[tenant]
	c.mu.Unlock()
	e, err := load(ctx)
	if err != nil {
		return nil, err
	}
	e.loaded = now
	c.mu.Lock()
	if c.gen[tenant] == gen {
		if c.entries == nil {
			c.entries = make(map[string]*tenantConfig)
		}
		c.entries[tenant] = e
	}
	c.mu.Unlock()
	return e, nil
}

// drop forgets the tenant's entry after a change.
func (c *configCache) drop(tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == nil {
		c.gen = make(map[string]uint64)
	}
	c.gen[tenant]++
	delete(c.entries, tenant)
}

// config returns the tenant's secrets and routes through the cache.
func (s *Service) config(ctx context.Context, tenant string) (*tenantConfig, error) {
	return s.cache.get(ctx, tenant, s.now(), func(ctx context.Context) (*tenantConfig, error) {
		secrets, err := s.secrets(ctx, tenant)
		if err != nil {
			return nil, err
		}
		routes, err := s.routes(ctx, tenant)
		if err != nil {
			return nil, err
		}
		return &tenantConfig{secrets: secrets, routes: routes}, nil
	})
}

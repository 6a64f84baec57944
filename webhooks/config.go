package webhooks

import (
	"time"

	"github.com/circlegate/circlegate/errs"
)

// Config configures webhook delivery. It is the [webhooks] section of the config file.
type Config struct {
	// MaxBodyBytes bounds a webhook request body; larger is refused with 413. Zero
	// means 1 MiB.
	MaxBodyBytes int64 `toml:"max_body_bytes"`
	// MaxDeliveries bounds each tenant's delivery log: older entries are pruned (the
	// log may briefly hold a tenth more). Zero means 1000.
	MaxDeliveries int `toml:"max_deliveries"`
	// SyncDeliveryLog writes each delivery log entry durably before the reply, at the
	// cost of one more storage sync per delivery. False by default: with Pebble an
	// entry is written without waiting for the disk and becomes durable with the
	// store's next synced write (under load the next commit, a few milliseconds
	// later), so a crash may lose the newest entries, never a mutation. With Redis
	// every entry is as durable as Redis's appendfsync makes it either way.
	SyncDeliveryLog bool `toml:"sync_delivery_log"`
	// MaxSecrets is the most secrets a tenant may add with webhook.secret.add (those
	// from the config file do not count). Zero means 32.
	MaxSecrets int `toml:"max_secrets"`
	// MaxRoutes is the most routes a tenant may set. Zero means 256.
	MaxRoutes int `toml:"max_routes"`
	// CacheTTL is how long a gateway reuses a tenant's secrets and routes once read
	// from storage. A change made through this gateway applies at once; one made
	// through another gateway of a fleet within CacheTTL. Zero means 1s.
	CacheTTL time.Duration `toml:"cache_ttl"`
	// Stripe configures Stripe verification ([webhooks.stripe]).
	Stripe StripeConfig `toml:"stripe"`
	// Standard configures Standard Webhooks verification ([webhooks.standard]).
	Standard StandardConfig `toml:"standard"`
}

// StripeConfig configures the verification of Stripe events.
type StripeConfig struct {
	// Tolerance is how far the Stripe-Signature timestamp may lie in the past (or the
	// future). Zero means 300s.
	Tolerance time.Duration `toml:"tolerance"`
	// StrictAPIVersion refuses events whose api_version differs from the one stripe-go
	// v76 was built for. False by default: accounts pin different API versions, and
	// the event is passed to the app as JSON, not decoded into stripe-go's types.
	StrictAPIVersion bool `toml:"strict_api_version"`
}

// StandardConfig configures the verification of Standard Webhooks.
type StandardConfig struct {
	// Tolerance is how far webhook-timestamp may lie in the past or the future. Zero
	// means 300s.
	Tolerance time.Duration `toml:"tolerance"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.MaxDeliveries == 0 {
		c.MaxDeliveries = 1000
	}
	if c.MaxSecrets == 0 {
		c.MaxSecrets = 32
	}
	if c.MaxRoutes == 0 {
		c.MaxRoutes = 256
	}
	if c.CacheTTL == 0 {
		c.CacheTTL = time.Second
	}
	if c.Stripe.Tolerance == 0 {
		c.Stripe.Tolerance = 300 * time.Second
	}
	if c.Standard.Tolerance == 0 {
		c.Standard.Tolerance = 300 * time.Second
	}
	return c
}

// Validate reports the first invalid field, by its config key.
func (c Config) Validate() error {
	switch {
	case c.MaxBodyBytes < 1024:
		return errs.Param("max_body_bytes", "must be at least 1024")
	case c.MaxDeliveries < 1:
		return errs.Param("max_deliveries", "must be at least 1")
	case c.MaxSecrets < 1:
		return errs.Param("max_secrets", "must be at least 1")
	case c.MaxRoutes < 1:
		return errs.Param("max_routes", "must be at least 1")
	case c.CacheTTL < 0:
		return errs.Param("cache_ttl", "must not be negative")
	case c.Stripe.Tolerance < time.Second:
		return errs.Param("stripe.tolerance", "must be at least 1s")
	case c.Standard.Tolerance < time.Second:
		return errs.Param("standard.tolerance", "must be at least 1s")
	}
	return nil
}

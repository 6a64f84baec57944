package admin

import (
	"fmt"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/tenant"
)

// Config configures the admin API. It is the [admin] section of the config file.
type Config struct {
	// RootKeys are the node's root keys: secp256k1 public keys whose holders manage
	// the node (tenants, root keys, revocation of every key) and act as owner of every
	// tenant through the admin API. --root-key adds more. None by default.
	RootKeys []string `toml:"root_keys"`
	// MaxClientKeys bounds the client keys recorded per tenant (and for the node) by
	// add-client-key. Past it, a guest still gets its token, but its key is not
	// recorded; owners always are. Zero means 1000.
	MaxClientKeys int `toml:"max_client_keys"`
	// SyncInterval is how often this gateway reloads runtime tenants, root keys and
	// revocations from storage, so that changes made through another gateway of a
	// fleet apply here too. Changes made through this gateway apply at once. Zero means
	// 1s; negative means never.
	SyncInterval time.Duration `toml:"sync_interval"`
	// Dev trusts the first key that completes a node challenge as a root key while the
	// node has none (trust on first use). Only the --dev flag sets it: a config file
	// cannot.
	Dev bool `toml:"-"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.MaxClientKeys == 0 {
		c.MaxClientKeys = 1000
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = time.Second
	}
	return c
}

// Validate reports the first invalid field, by its config key.
func (c Config) Validate() error {
	for i, k := range c.RootKeys {
		if _, err := tenant.NormalizePubKey(k); err != nil {
			return errs.Param(fmt.Sprintf("root_keys[%d]", i), "%q is not a secp256k1 public key", k)
		}
	}
	if c.MaxClientKeys < 0 {
		return errs.Param("max_client_keys", "must not be negative")
	}
	return nil
}

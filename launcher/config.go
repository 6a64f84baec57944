package launcher

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/circlegate/circlegate/admin"
	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/execution"
	"github.com/circlegate/circlegate/internal/redisx"
	"github.com/circlegate/circlegate/rpc"
	"github.com/circlegate/circlegate/store"
	"github.com/circlegate/circlegate/tenant"
	"github.com/circlegate/circlegate/webhooks"
	"github.com/circlegate/circlegate/ws"
)

// Config is the whole gateway configuration: the TOML file, then flags on top.
// configs/circlegate.toml documents every key with its default.
type Config struct {
	// Listen is the HTTP listen address. Empty means 127.0.0.1:8080.
	Listen string `toml:"listen"`
	// Data is the data directory (node secret, storage). Empty means ./data.
	Data string `toml:"data"`
	// ShutdownTimeout bounds a graceful shutdown. Zero means 10s.
	ShutdownTimeout time.Duration `toml:"shutdown_timeout"`
	// Demo adds a demo tenant whose key pair is kept in <data>/demo-tenant.json and
	// printed at start. False by default.
	Demo bool `toml:"demo"`

	Log       LogConfig         `toml:"log"`
	TLS       TLSConfig         `toml:"tls"`
	Auth      tenant.AuthConfig `toml:"auth"`
	RPC       rpc.Config        `toml:"rpc"`
	Sessions  ws.Config         `toml:"sessions"`
	Execution execution.Config  `toml:"execution"`
	Store     StoreConfig       `toml:"store"`
	Redis     RedisConfig       `toml:"redis"`
	Webhooks  webhooks.Config   `toml:"webhooks"`
	Admin     admin.Config      `toml:"admin"`
	Tenants   []TenantConfig    `toml:"tenants"`

	file string // where the config came from, for error messages
}

// LogConfig configures logging.
type LogConfig struct {
	// Level is debug, info, warn or error. Empty means info.
	Level string `toml:"level"`
	// Format is text or json. Empty means text.
	Format string `toml:"format"`
}

// TLSConfig configures HTTPS/WSS.
type TLSConfig struct {
	// Enabled serves TLS with Cert and Key. False by default.
	Enabled bool `toml:"enabled"`
	// Cert is the PEM certificate chain file.
	Cert string `toml:"cert"`
	// Key is the PEM private key file.
	Key string `toml:"key"`
}

// StoreConfig configures the embedded store (Pebble in <data>/store).
type StoreConfig struct {
	// CacheBytes is Pebble's block cache, beside its memtables. Zero means 64 MiB.
	CacheBytes int64 `toml:"cache_bytes"`
	// MemTableBytes is Pebble's memtable size. Zero means 32 MiB.
	MemTableBytes int64 `toml:"memtable_bytes"`
	// StateCacheBytes bounds the state values kept in memory for point reads. Zero
	// means 32 MiB; negative means none.
	StateCacheBytes int64 `toml:"state_cache_bytes"`
	// History bounds each context's event history ([store.history]).
	History store.HistoryConfig `toml:"history"`
}

// RedisConfig makes the process a node of a fleet ([redis]): state, queue and event
// bus live in one Redis shared by every gateway and worker.
type RedisConfig struct {
	// URL is redis://[user:password@]host:port[/db] (rediss:// for TLS). A Redis
	// Cluster node's URL makes a cluster client (more seeds as ?addr=host:port).
	// Empty means the embedded mode: Pebble in the data dir, in-process queue and bus.
	URL string `toml:"url"`
	// Prefix starts every key and channel, so several fleets can share one Redis.
	// Empty means "cg".
	Prefix string `toml:"prefix"`
	// PoolSize is the most connections to each Redis node. Zero means 10 per CPU.
	PoolSize int `toml:"pool_size"`
	// Queue configures the fleet's job stream ([redis.queue]).
	Queue execution.RedisQueueConfig `toml:"queue"`
}

// Fleet reports whether the config runs a fleet node.
func (c *Config) Fleet() bool { return c.Redis.URL != "" }

// TenantConfig is one [[tenants]] entry.
type TenantConfig struct {
	// PubKey is the tenant's secp256k1 public key (compressed or uncompressed hex).
	PubKey string `toml:"pubkey"`
	// Name is a label for logs; empty by default.
	Name string `toml:"name"`
	// Admins are keys that act as owner of this tenant; none by default.
	Admins []string `toml:"admins"`
	// WebhookSecrets are webhook signing secrets of this tenant
	// ([[tenants.webhook_secrets]]), beside those added with webhook.secret.add; none
	// by default.
	WebhookSecrets []WebhookSecretConfig `toml:"webhook_secrets"`
}

// WebhookSecretConfig is one [[tenants.webhook_secrets]] entry. Exactly one of Secret
// and SecretEnv is set.
type WebhookSecretConfig struct {
	// Provider is stripe, idenfy or standard.
	Provider string `toml:"provider"`
	// Name is the endpoint name of a standard secret (/webhooks/standard/<pk>/<name>);
	// empty for stripe and idenfy.
	Name string `toml:"name"`
	// Secret is the signing secret itself.
	Secret string `toml:"secret"`
	// SecretEnv names an environment variable that holds the secret, read at start.
	SecretEnv string `toml:"secret_env"`
}

// value returns the secret, read from the environment when SecretEnv is set.
func (w WebhookSecretConfig) value() (string, error) {
	switch {
	case w.Secret != "" && w.SecretEnv != "":
		return "", errs.Param("secret", "set secret or secret_env, not both")
	case w.SecretEnv != "":
		v, ok := os.LookupEnv(w.SecretEnv)
		if !ok || v == "" {
			return "", errs.Param("secret_env", "environment variable %s is not set", w.SecretEnv)
		}
		return v, nil
	case w.Secret == "":
		return "", errs.Param("secret", "set secret or secret_env")
	}
	return w.Secret, nil
}

// check validates the entry; the error names the key (provider, name, secret or
// secret_env) and never holds the secret.
func (w WebhookSecretConfig) check() error {
	p, err := webhooks.ParseProvider(w.Provider)
	if err != nil {
		return err
	}
	v, err := w.value()
	if err != nil {
		return err
	}
	if err := webhooks.CheckSecret(p, w.Name, v); err != nil {
		var e *errs.Error
		if errors.As(err, &e) && e.Param == "secret" && w.SecretEnv != "" {
			return errs.Param("secret_env", "%s", e.Reason())
		}
		return err
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.Data == "" {
		c.Data = "./data"
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.Execution.CacheDir == "" {
		c.Execution.CacheDir = filepath.Join(c.Data, "wasm-cache")
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
}

// LoadConfig reads a TOML config file. Unknown keys are errors naming the key.
func LoadConfig(path string) (*Config, error) {
	cfg := &Config{file: path}
	md, err := toml.DecodeFile(path, cfg)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, fmt.Errorf("%s: line %d: %s", path, perr.Position.Line, perr.Message)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("%s: %s: unknown key", path, und[0].String())
	}
	return cfg, nil
}

// Validate applies defaults and checks every section of a gateway's config, naming
// the file, the key and the reason of the first problem.
func (c *Config) Validate() error {
	if err := c.validateShared(); err != nil {
		return err
	}
	return c.validateTenants()
}

// validateShared checks what gateways and workers share: everything but listening and
// tenants.
func (c *Config) validateShared() error {
	c.setDefaults()
	file := c.file
	if file == "" {
		file = "flags"
	}
	fail := func(key, reason string) error { return fmt.Errorf("%s: %s: %s", file, key, reason) }
	switch {
	case !strings.Contains(c.Listen, ":"):
		return fail("listen", fmt.Sprintf("%q is not host:port", c.Listen))
	case c.ShutdownTimeout < 0:
		return fail("shutdown_timeout", "must not be negative")
	case c.Store.CacheBytes < 0:
		return fail("store.cache_bytes", "must not be negative")
	case c.Store.MemTableBytes != 0 && c.Store.MemTableBytes < 1<<20:
		return fail("store.memtable_bytes", "must be at least 1 MiB")
	case c.Store.History.MaxEvents < 0:
		return fail("store.history.max_events", "must not be negative")
	case c.Store.History.MaxAge < 0:
		return fail("store.history.max_age", "must not be negative")
	case !oneOf(c.Log.Level, "debug", "info", "warn", "error"):
		return fail("log.level", fmt.Sprintf("%q is not debug, info, warn or error", c.Log.Level))
	case !oneOf(c.Log.Format, "text", "json"):
		return fail("log.format", fmt.Sprintf("%q is not text or json", c.Log.Format))
	}
	if c.TLS.Enabled {
		for _, f := range []struct{ key, path string }{{"tls.cert", c.TLS.Cert}, {"tls.key", c.TLS.Key}} {
			key, path := f.key, f.path
			if path == "" {
				return fail(key, "required when tls.enabled is true")
			}
			if _, err := os.Stat(path); err != nil {
				return fail(key, fmt.Sprintf("cannot read %s", path))
			}
		}
	}
	sections := []struct {
		name string
		err  error
	}{
		{"auth", c.Auth.WithDefaults().Validate()},
		{"rpc", c.RPC.WithDefaults().Validate()},
		{"sessions", c.Sessions.WithDefaults().Validate()},
		{"execution", c.Execution.WithDefaults().Validate()},
		{"webhooks", c.Webhooks.WithDefaults().Validate()},
		{"admin", c.Admin.WithDefaults().Validate()},
	}
	for _, s := range sections {
		if s.err != nil {
			return fail(s.name+"."+paramOf(s.err), reasonOf(s.err))
		}
	}
	return c.validateRedis(fail)
}

// validateRedis checks the [redis] section, and the execution keys that depend on it.
func (c *Config) validateRedis(fail func(key, reason string) error) error {
	if !c.Fleet() {
		if c.Execution.Workers < 0 {
			return fail("execution.workers", "-1 (accept only) needs redis.url: an embedded gateway runs its own workers")
		}
		return nil
	}
	if err := redisx.CheckURL(c.Redis.URL); err != nil {
		return fail("redis.url", err.Error())
	}
	if err := redisx.CheckPrefix(c.redisPrefix()); err != nil {
		return fail("redis.prefix", reasonOf(err))
	}
	if c.Redis.PoolSize < 0 {
		return fail("redis.pool_size", "must not be negative")
	}
	ec := c.Execution.WithDefaults()
	if err := c.Redis.Queue.WithDefaults(ec.Limits.Timeout).Validate(); err != nil {
		return fail("redis.queue."+paramOf(err), reasonOf(err))
	}
	return nil
}

func (c *Config) redisPrefix() string {
	if c.Redis.Prefix == "" {
		return "cg"
	}
	return c.Redis.Prefix
}

// validateTenants checks the tenants a gateway serves.
func (c *Config) validateTenants() error {
	file := c.file
	if file == "" {
		file = "flags"
	}
	fail := func(key, reason string) error { return fmt.Errorf("%s: %s: %s", file, key, reason) }
	if len(c.Tenants) == 0 && !c.Demo && len(c.Admin.RootKeys) == 0 && !c.Admin.Dev {
		return fail("tenants", "no tenant configured: pass -k <tenant_pk>, add [[tenants]], use --demo, "+
			"or name a root key (--root-key) that adds tenants through the admin API")
	}
	for i, t := range c.Tenants {
		if _, err := tenant.NormalizePubKey(t.PubKey); err != nil {
			return fail(fmt.Sprintf("tenants[%d].pubkey", i), reasonOf(err))
		}
		for j, a := range t.Admins {
			if _, err := tenant.NormalizePubKey(a); err != nil {
				return fail(fmt.Sprintf("tenants[%d].admins[%d]", i, j), reasonOf(err))
			}
		}
		for j, w := range t.WebhookSecrets {
			if err := w.check(); err != nil {
				return fail(fmt.Sprintf("tenants[%d].webhook_secrets[%d].%s", i, j, paramOf(err)), reasonOf(err))
			}
		}
	}
	return nil
}

// paramOf returns the config key an errs.Param error names.
func paramOf(err error) string {
	var e *errs.Error
	if errors.As(err, &e) && e.Param != "" {
		return e.Param
	}
	return "?"
}

func reasonOf(err error) string {
	var e *errs.Error
	if errors.As(err, &e) && e.Param != "" {
		return e.Reason()
	}
	return err.Error()
}

func oneOf(v string, options ...string) bool {
	for _, o := range options {
		if v == o {
			return true
		}
	}
	return false
}

func (c *Config) demoPath() string { return filepath.Join(c.Data, "demo-tenant.json") }

package launcher

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/circlegate/circlegate/tenant"
)

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var tenants stringList
	fs.Var(&tenants, "k", "tenant public key to serve (repeatable)")
	fs.Var(&tenants, "tenant", "same as -k")
	configFile := fs.String("config", "", "TOML config file (configs/circlegate.toml documents every key)")
	listen := fs.String("listen", "", "listen address (default 127.0.0.1:8080)")
	data := fs.String("data", "", "data directory (default ./data)")
	useTLS := fs.Bool("tls", false, "serve TLS (needs --cert and --key)")
	cert := fs.String("cert", "", "TLS certificate PEM file")
	key := fs.String("key", "", "TLS private key PEM file")
	demo := fs.Bool("demo", false, "add a demo tenant whose key pair is kept in <data>/demo-tenant.json and printed")
	check := fs.Bool("check-config", false, "validate the configuration and exit")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (default info)")
	var rootKeys stringList
	fs.Var(&rootKeys, "root-key", "a root key of the node's admin API (repeatable; beside admin.root_keys)")
	dev := fs.Bool("dev", false, "development: the first key to log in to the admin API becomes a root key while there is none")
	redisURL := fs.String("redis", "", "run as a node of the fleet on this Redis (redis://HOST:PORT/DB); default: embedded")
	workers := fs.Int("workers", -2, "concurrent job batches of this process; with --redis, 0 runs none (accept only)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg := &Config{}
	if *configFile != "" {
		var err error
		if cfg, err = LoadConfig(*configFile); err != nil {
			fmt.Fprintf(stderr, "circlegate: %v\n", err)
			return 2
		}
	}
	// Flags override the file.
	for _, k := range tenants {
		cfg.Tenants = append(cfg.Tenants, TenantConfig{PubKey: k})
	}
	setIf(&cfg.Listen, *listen)
	setIf(&cfg.Data, *data)
	setIf(&cfg.TLS.Cert, *cert)
	setIf(&cfg.TLS.Key, *key)
	setIf(&cfg.Log.Level, *logLevel)
	setIf(&cfg.Redis.URL, *redisURL)
	if err := setWorkers(cfg, *workers); err != nil {
		fmt.Fprintf(stderr, "circlegate: %v\n", err)
		return 2
	}
	cfg.TLS.Enabled = cfg.TLS.Enabled || *useTLS
	cfg.Demo = cfg.Demo || *demo
	cfg.Admin.RootKeys = append(cfg.Admin.RootKeys, rootKeys...)
	cfg.Admin.Dev = *dev
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "circlegate: %v\n", err)
		return 2
	}
	if *check {
		fmt.Fprintln(stdout, "config ok")
		return 0
	}
	log := newLogger(cfg.Log, stderr)
	if cfg.Demo {
		kp, err := demoTenant(cfg)
		if err != nil {
			fmt.Fprintf(stderr, "circlegate: demo tenant: %v\n", err)
			return 1
		}
		printDemo(stdout, kp)
	}
	g, err := Start(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "circlegate: %v\n", err)
		return 1
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	case err := <-g.Done():
		log.Error("server stopped", "err", err)
		return 1
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := g.Shutdown(sctx); err != nil {
		log.Error("shutdown incomplete", "err", err)
		return 1
	}
	return 0
}

// setWorkers applies serve's --workers flag (-2 when not given). The flag counts the
// workers of this process: with a fleet, 0 means none, which the config file spells
// workers = -1 (there 0 means GOMAXPROCS).
func setWorkers(cfg *Config, n int) error {
	switch {
	case n == -2:
		return nil
	case n < -1:
		return fmt.Errorf("--workers %d: must be 0 or more", n)
	case n == 0 && !cfg.Fleet():
		return fmt.Errorf("--workers 0 needs --redis: an embedded gateway runs its own workers")
	case n == 0:
		n = -1
	}
	cfg.Execution.Workers = n
	return nil
}

func setIf(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

func newLogger(c LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// demoTenant loads or creates the demo key pair and adds it to cfg's tenants.
func demoTenant(cfg *Config) (KeyPair, error) {
	var kp KeyPair
	b, err := os.ReadFile(cfg.demoPath())
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &kp); err != nil {
			return kp, fmt.Errorf("%s: %w", cfg.demoPath(), err)
		}
	case errors.Is(err, os.ErrNotExist):
		kp = NewKeyPair()
		if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
			return kp, err
		}
		if err := writeJSONFile(cfg.demoPath(), kp); err != nil {
			return kp, err
		}
	default:
		return kp, err
	}
	if _, err := tenant.NormalizePubKey(kp.PublicKey); err != nil {
		return kp, fmt.Errorf("%s: %w", cfg.demoPath(), err)
	}
	cfg.Tenants = append(cfg.Tenants, TenantConfig{PubKey: kp.PublicKey, Name: "demo"})
	return kp, nil
}

func printDemo(w io.Writer, kp KeyPair) {
	fmt.Fprintf(w, "demo tenant (kept in the data dir):\n  public key:  %s\n  private key: %s\n", kp.PublicKey, kp.PrivateKey)
}

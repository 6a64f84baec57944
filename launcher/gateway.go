package launcher

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/circlegate/circlegate"
	"github.com/circlegate/circlegate/admin"
	"github.com/circlegate/circlegate/events"
	"github.com/circlegate/circlegate/execution"
	"github.com/circlegate/circlegate/rpc"
	"github.com/circlegate/circlegate/store"
	"github.com/circlegate/circlegate/tenant"
	"github.com/circlegate/circlegate/webhooks"
	"github.com/circlegate/circlegate/ws"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Gateway is a running circlegate server.
type Gateway struct {
	cfg      *Config
	log      *slog.Logger
	Registry *tenant.Registry
	Auth     *tenant.Auth
	RPC      *rpc.Server
	Hub      *ws.Hub
	Metrics  *prometheus.Registry
	Store    store.Store
	Engine   *execution.Engine
	Queue    execution.Queue
	Service  *execution.Service
	Bus      events.Bus
	Webhooks *webhooks.Service
	Admin    *admin.Service

	backends *backends
	ln       net.Listener
	http     *http.Server
	served   chan error
	workers  context.CancelFunc
	workDone chan struct{}
	syncStop context.CancelFunc
	syncDone chan struct{}
	stopOnce sync.Once
	stopErr  error
}

// Start wires every component from cfg (validated here) and starts serving. The
// listener is bound when Start returns; Addr tells where.
func Start(cfg *Config, log *slog.Logger) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, log: log, Metrics: prometheus.NewRegistry(), served: make(chan error, 1)}
	g.Metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "circlegate"}))
	if err := g.wire(); err != nil {
		g.closeBackends()
		return nil, err
	}
	g.startWorkers()
	g.startAdminSync()
	if err := g.listen(); err != nil {
		g.stopAdminSync()
		g.stopWorkers()
		g.closeBackends()
		return nil, err
	}
	return g, nil
}

// openExecution opens the store, the engine, the queue, the bus and the service.
func (g *Gateway) openExecution() error {
	b, err := openBackends(context.Background(), g.cfg, g.log, g.Metrics)
	if err != nil {
		return err
	}
	g.backends = b
	g.Store, g.Engine, g.Queue, g.Bus = b.Store, b.Engine, b.Queue, b.Bus
	g.Service, err = execution.NewService(g.cfg.Execution, g.Store, g.Engine, g.Queue, g.Bus, g.log, g.Metrics)
	return err
}

// openWebhooks starts the webhook service with the secrets of the config file and
// registers the owner's webhook.* methods.
func (g *Gateway) openWebhooks() error {
	var err error
	if g.Webhooks, err = webhooks.NewService(g.cfg.Webhooks, g.Registry, g.Store, g.Service, g.log.With("component", "webhooks"), g.Metrics); err != nil {
		return err
	}
	for i, t := range g.cfg.Tenants {
		pk, _ := tenant.NormalizePubKey(t.PubKey) // checked by Validate
		for j, w := range t.WebhookSecrets {
			v, err := w.value()
			if err == nil {
				err = g.Webhooks.AddConfigSecret(pk, webhooks.Provider(w.Provider), w.Name, v)
			}
			if err != nil {
				return fmt.Errorf("tenants[%d].webhook_secrets[%d]: %s", i, j, reasonOf(err))
			}
		}
	}
	webhooks.RegisterMethods(g.RPC, g.Webhooks)
	return nil
}

func (g *Gateway) startWorkers() {
	ctx, cancel := context.WithCancel(context.Background())
	g.workers, g.workDone = cancel, make(chan struct{})
	go func() {
		defer close(g.workDone)
		if err := g.Service.RunWorkers(ctx); err != nil {
			g.log.Error("workers stopped", "err", err)
		}
	}()
}

// openAdmin loads the node key and starts the admin API's service: root keys,
// runtime tenants (added to the registry here) and durable revocations. A revocation
// closes the sessions and SSE streams of the tokens it refuses.
func (g *Gateway) openAdmin() (http.Handler, error) {
	key, err := g.nodeKey()
	if err != nil {
		return nil, err
	}
	var fromConfig []string
	for _, t := range g.Registry.List() {
		fromConfig = append(fromConfig, t.PubKey)
	}
	g.Admin, err = admin.NewService(context.Background(), g.cfg.Admin, admin.Deps{
		NodeKey: key, Auth: g.Auth, Registry: g.Registry, Store: g.Store, Exec: g.Service,
		Webhooks: g.Webhooks, Sessions: hubSessions{g.Hub}, ConfigTenants: fromConfig,
		Log: g.log.With("component", "admin"),
	})
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	g.Auth.OnRevoke(func() { g.Hub.CloseRevoked() })
	if g.cfg.Admin.Dev {
		g.log.Warn("dev mode: while the node has no root key, the first key to log in to the admin API becomes one")
	}
	return admin.NewHandler(g.Admin, g.Metrics)
}

// nodeKey returns the node's own key: in the data dir, or shared by the whole fleet.
func (g *Gateway) nodeKey() (*secp256k1.PrivateKey, error) {
	if g.cfg.Fleet() {
		return fleetNodeKey(context.Background(), g.backends.redis, g.cfg.redisPrefix())
	}
	return tenant.LoadOrCreateNodeKey(g.cfg.Data)
}

// hubSessions is the hub as the admin API sees it.
type hubSessions struct{ *ws.Hub }

func (h hubSessions) CloseTenant(pk string) int {
	return h.Hub.CloseTenant(pk, ws.DisconnectTenantRemoved)
}

func (g *Gateway) startAdminSync() {
	ctx, cancel := context.WithCancel(context.Background())
	g.syncStop, g.syncDone = cancel, make(chan struct{})
	go func() {
		defer close(g.syncDone)
		g.Admin.Run(ctx)
	}()
}

func (g *Gateway) stopAdminSync() {
	if g.syncStop != nil {
		g.syncStop()
		<-g.syncDone
	}
}

func (g *Gateway) stopWorkers() {
	if g.workers != nil {
		g.workers()
		_ = g.Queue.Close()
		<-g.workDone
	}
}

func (g *Gateway) closeBackends() {
	if g.backends != nil {
		g.backends.close(g.log)
	}
}

func (g *Gateway) wire() error {
	cfg := g.cfg
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := g.openExecution(); err != nil {
		return err
	}
	var secret []byte
	var nonces tenant.NonceStore // nil: in memory
	var err error
	if cfg.Fleet() {
		secret, err = fleetSecret(context.Background(), g.backends.redis, cfg.redisPrefix())
		// A nonce fetched through one gateway may be signed back through another.
		nonces = tenant.NewRedisNonceStore(g.backends.redis, cfg.redisPrefix(), cfg.Auth.WithDefaults().Nonces())
	} else {
		secret, err = tenant.LoadOrCreateSecret(cfg.Data)
	}
	if err != nil {
		return err
	}
	if g.Auth, err = tenant.NewAuth(cfg.Auth, tenant.NewTokens(secret, nil), nonces); err != nil {
		return err
	}
	g.Registry = tenant.NewRegistry()
	for _, t := range cfg.Tenants {
		if _, err := g.Registry.Add(tenant.Tenant{PubKey: t.PubKey, Name: t.Name, Admins: t.Admins}); err != nil {
			return err
		}
	}
	spec, err := rpc.ParseSpec(circlegate.OpenRPC)
	if err != nil {
		return err
	}
	if g.RPC, err = rpc.NewServer(cfg.RPC, spec, g.log, g.Metrics); err != nil {
		return err
	}
	rpc.RegisterAuth(g.RPC, g.Auth, circlegate.OpenRPC)
	rpc.RegisterApps(g.RPC, g.Service)
	rpc.RegisterEvents(g.RPC, g.Service)
	if err := g.openWebhooks(); err != nil {
		return err
	}
	if g.Hub, err = ws.NewHub(cfg.Sessions, g.RPC, g.Auth, g.log, g.Metrics); err != nil {
		return err
	}
	g.Hub.UseEvents(g.Bus, g.Store, g.Service)
	adminHandler, err := g.openAdmin()
	if err != nil {
		return err
	}
	sc := g.Hub.Config()
	httpRPC := &rpc.HTTP{Server: g.RPC, Auth: g.Auth, MaxBodyBytes: sc.MaxMessageBytes, OwnerMaxBodyBytes: sc.OwnerMaxMessageBytes}
	g.http = &http.Server{
		Handler:           newRouter(g.Registry, g.Hub, httpRPC, &webhooks.Handler{Service: g.Webhooks}, adminHandler, g.Metrics),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
	g.http.RegisterOnShutdown(g.Hub.StartShutdown) // SSE handlers end only when told
	return nil
}

func (g *Gateway) listen() error {
	// No TCP keep-alive: sessions and SSE streams find dead peers with their own
	// pings, idle HTTP connections time out, and each accepted connection saves the
	// system calls that would set it up.
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(context.Background(), "tcp", g.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", g.cfg.Listen, err)
	}
	if g.cfg.TLS.Enabled {
		cert, err := tls.LoadX509KeyPair(g.cfg.TLS.Cert, g.cfg.TLS.Key)
		if err != nil {
			ln.Close()
			return fmt.Errorf("tls: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	g.ln = ln
	go func() { g.served <- g.http.Serve(ln) }()
	g.log.Info("listening", "addr", ln.Addr().String(), "tls", g.cfg.TLS.Enabled,
		"tenants", g.Registry.Len(), "max_connections", g.Hub.Config().MaxConnections)
	return nil
}

// Addr returns the address the gateway listens on.
func (g *Gateway) Addr() string { return g.ln.Addr().String() }

// URL returns the base URL of the gateway, http or https.
func (g *Gateway) URL() string {
	if g.cfg.TLS.Enabled {
		return "https://" + g.Addr()
	}
	return "http://" + g.Addr()
}

// Done yields the error of the HTTP server if it stops on its own.
func (g *Gateway) Done() <-chan error { return g.served }

// Shutdown stops accepting, closes every session with 1001 going away, waits for
// in-flight HTTP requests and session goroutines until ctx ends, then stops the
// workers (a job being committed finishes; queued ones fail with -32006, never
// acknowledged) and closes the engine and the store. It runs once.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.stopOnce.Do(func() {
		httpErr := g.http.Shutdown(ctx)
		hubErr := g.Hub.Shutdown(ctx)
		g.stopAdminSync()
		g.stopWorkers()
		g.closeBackends()
		g.stopErr = errors.Join(httpErr, hubErr)
		g.log.Info("stopped", "err", g.stopErr)
	})
	return g.stopErr
}

func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}

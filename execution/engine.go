package execution

import (
	"context"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/store"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// EngineConfig configures the wazero engine.
type EngineConfig struct {
	// CacheDir keeps compiled modules on disk, so that a restart does not compile
	// again. Empty means in memory only.
	CacheDir string `toml:"cache_dir"`
	// Limits bound every call that brings none of its own.
	Limits Limits `toml:"limits"`
	// PoolSize is the most instances of one (tenant, app) alive at once; a call that
	// finds them all busy waits for one. Zero means
	// 2*GOMAXPROCS.
	PoolSize int `toml:"pool_size"`
}

// WithDefaults returns c with every zero field set to its default.
func (c EngineConfig) WithDefaults() EngineConfig {
	if c.PoolSize == 0 {
		c.PoolSize = 2 * runtime.GOMAXPROCS(0)
	}
	c.Limits = c.Limits.WithDefaults()
	return c
}

// Validate reports the first invalid field, by its config key.
func (c EngineConfig) Validate() error {
	if c.PoolSize < 0 {
		return errs.Param("pool_size", "must not be negative")
	}
	if err := c.Limits.Validate(); err != nil {
		if e, ok := err.(*errs.Error); ok {
			return errs.Param("limits."+e.Param, "%s", strings.TrimPrefix(e.Message, "invalid param "+e.Param+": "))
		}
		return err
	}
	return nil
}

// StateReader is the committed state a call reads. The engine lays the call's own
// writes over it.
type StateReader interface {
	// Get returns the value under key.
	Get(key []byte) ([]byte, bool, error)
	// Scan returns up to limit entries with prefix whose key is greater than after,
	// in key order.
	Scan(prefix, after []byte, limit int) ([]store.KV, error)
}

// Call is one method call on an app.
type Call struct {
	Tenant, AppID string
	// Wasm fetches the module when the app is not compiled yet.
	Wasm   func() ([]byte, error)
	Method string
	// Args are the call's JSON args; they may be empty.
	Args []byte
	// Caller is the caller's public key, hex.
	Caller    string
	ContextID string
	// Time is the job's time: what tx_time, time.Now and the WASI clocks return.
	Time time.Time
	// Deadline, unless zero, stops the call when it passes, as the context's
	// deadline would (a job's deadline, without a context of its own).
	Deadline time.Time
	// ReadOnly makes storage_write, storage_remove and emit trap (a query).
	ReadOnly bool
	// State is the context's committed state; nil means empty.
	State StateReader
	// Limits, if set, override the engine's limits for this call; its zero fields
	// take the engine's values.
	Limits *Limits
}

// Result is what a successful call produced.
type Result struct {
	// Output is what value_return gave: empty or JSON. Nil if it was never called.
	Output []byte
	// Writes holds the final value of every key the call touched, in first-touch
	// order; a key set then removed is a Delete.
	Writes []store.Write
	// Events are the events the call emitted, in order.
	Events []Emitted
	// Logs are the call's log lines (log_utf8, and the guest's stdout and stderr).
	Logs []string
	// Dropped counts the log lines past max_log_lines.
	Dropped int
}

// Emitted is one event an app emitted. Data is JSON (or empty).
type Emitted struct {
	Kind string
	Data []byte
}

// EngineStats counts the engine's work since it started.
type EngineStats struct {
	Compiled     int64 // modules compiled, or loaded from the disk cache
	Instantiated int64 // instances created
	Discarded    int64 // instances closed after a failed call
}

// Engine runs app methods on wazero. Modules are compiled once per app (and cached on
// disk); instances are pooled per (tenant, app), and an instance whose call failed is
// closed, never reused. It is safe for concurrent use.
type Engine struct {
	cfg   EngineConfig
	log   *slog.Logger
	rt    wazero.Runtime
	cache wazero.CompilationCache
	wasi  map[string]api.FunctionDefinition

	mu     sync.Mutex
	apps   map[string]*engineApp
	dying  map[string]*engineApp // evicted apps whose instances still run
	pools  map[enginePoolKey]*enginePool
	closed bool

	compiled, instantiated, discarded atomic.Int64

	// Pools grow in the background (enginePool); Close cancels bg and waits.
	bg        context.Context
	bgCancel  context.CancelFunc
	bgMu      sync.Mutex
	bgDone    bool
	bgRunning sync.WaitGroup
}

// NewEngine starts a wazero runtime with the host ABI and WASI.
func NewEngine(ctx context.Context, cfg EngineConfig, log *slog.Logger) (*Engine, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// No WithCloseOnContextDone: compile instruments every module so that a call's
	// deadline stops it at a much lower cost (engine_interrupt.go).
	rc := wazero.NewRuntimeConfig()
	var cache wazero.CompilationCache
	if cfg.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, errs.Param("cache_dir", "%v", err)
		}
		cache = c
		rc = rc.WithCompilationCache(c)
	}
	e := &Engine{
		cfg: cfg, log: log.With("component", "engine"), rt: wazero.NewRuntimeWithConfig(ctx, rc), cache: cache,
		apps: map[string]*engineApp{}, dying: map[string]*engineApp{}, pools: map[enginePoolKey]*enginePool{},
	}
	e.bg, e.bgCancel = context.WithCancel(context.WithoutCancel(ctx))
	if err := e.instantiateHost(ctx); err != nil {
		_ = e.Close(ctx)
		return nil, err
	}
	return e, nil
}

func (e *Engine) instantiateHost(ctx context.Context) error {
	b := e.rt.NewHostModuleBuilder(abiModule)
	for _, f := range abiFuncs {
		b.NewFunctionBuilder().WithGoModuleFunction(f.fn, f.params, f.results).
			WithName(f.name).WithParameterNames(f.names...).Export(f.name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		return err
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, e.rt); err != nil {
		return err
	}
	e.wasi = e.rt.Module(abiWASI).ExportedFunctionDefinitions()
	return nil
}

// Validate compiles a module and checks that it speaks the ABI: it exports memory
// and circlegate_abi_v1, imports only ABI and WASI functions with their signatures,
// and is a reactor, not a command. Any failure is an errs.InvalidParams error.
func (e *Engine) Validate(ctx context.Context, wasm []byte) error {
	mod, err := e.compile(ctx, wasm)
	if err != nil {
		return err
	}
	return mod.Close(ctx)
}

// Run runs one method. A failure fails that call only: an unknown method is
// errs.InvalidParams, a trap, panic or limit errs.Execution, the timeout (or the
// deadline of ctx) errs.Overloaded. A failed call returns no Result.
func (e *Engine) Run(ctx context.Context, c Call) (Result, error) {
	lim := e.cfg.Limits
	if c.Limits != nil {
		lim = c.Limits.or(lim)
	}
	p, err := e.pool(ctx, &c)
	if err != nil {
		return Result{}, err
	}
	defer p.app.unref()
	if _, ok := p.app.methods[c.Method]; !ok {
		return Result{}, errs.E(errs.InvalidParams, "unknown method %q", c.Method)
	}
	in, err := e.acquire(ctx, p, &c, &lim)
	if err != nil {
		return Result{}, err
	}
	res, err := in.run(ctx, &c, &lim)
	if err != nil {
		e.discard(p, in, &c, err)
		if e.isClosed() {
			return Result{}, errs.Wrap(errs.Overloaded, err, "the execution engine closed during the call")
		}
		return Result{}, err
	}
	e.release(p, in)
	return res, nil
}

// Evict drops the pooled instances of (tenant, appID), and the compiled module when
// no other tenant uses it. Calls running now finish; their instances are then closed.
func (e *Engine) Evict(tenant, appID string) {
	e.mu.Lock()
	key := enginePoolKey{tenant, appID}
	p := e.pools[key]
	delete(e.pools, key)
	var app *engineApp
	if a, ok := e.apps[appID]; ok && !e.appInUse(appID) {
		delete(e.apps, appID)
		e.dying[appID] = a
		app = a
	}
	e.mu.Unlock()
	if p != nil {
		p.evict()
	}
	if app != nil {
		app.evict() // closes now, or when its last running instance closes
	}
}

// Stats returns the engine's counters.
func (e *Engine) Stats() EngineStats {
	return EngineStats{Compiled: e.compiled.Load(), Instantiated: e.instantiated.Load(), Discarded: e.discarded.Load()}
}

func (e *Engine) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// Close closes every instance and compiled module. Later calls fail.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.apps, e.pools = map[string]*engineApp{}, map[enginePoolKey]*enginePool{}
	e.mu.Unlock()
	e.bgMu.Lock()
	e.bgDone = true
	e.bgMu.Unlock()
	e.bgCancel() // a start in the background stops at its guest's next check
	e.bgRunning.Wait()
	err := e.rt.Close(ctx)
	if e.cache != nil {
		if cerr := e.cache.Close(ctx); err == nil {
			err = cerr
		}
	}
	return err
}

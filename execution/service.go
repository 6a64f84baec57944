package execution

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"runtime"
	"slices"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/store"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures the execution service. It is the [execution] section of the
// config file.
type Config struct {
	// Workers is the number of concurrent job batches this process runs; 0 means
	// GOMAXPROCS. The embedded queue's workers take turns (one batch in flight, so
	// batches grow with the load) and run side by side only while a batch takes
	// longer than 20 ms. A gateway with workers = -1 only accepts jobs (fleet mode;
	// the serve flag --workers 0 with --redis means the same).
	Workers int `toml:"workers"`
	// JobTimeout bounds a job from acceptance to commit. Zero means 10s.
	JobTimeout time.Duration `toml:"job_timeout"`
	// JobRecordTTL is how long a job's record (job.get) stays readable after the job
	// was accepted. Zero means 10 minutes.
	JobRecordTTL time.Duration `toml:"job_record_ttl"`
	// MaxAppBytes bounds an installed module (and a play script). Zero means 32 MiB.
	MaxAppBytes int `toml:"max_app_bytes"`
	// CacheDir holds compiled modules across restarts. Empty means <data>/wasm-cache.
	CacheDir string `toml:"cache_dir"`
	// PoolSize is the most instances of one (tenant, app) alive at once; a call that
	// finds them all busy waits. Zero means 2*GOMAXPROCS.
	PoolSize int `toml:"pool_size"`
	// Limits bound every call ([execution.limits]).
	Limits Limits `toml:"limits"`
	// Queue configures the embedded in-process queue ([execution.queue]).
	Queue MemoryQueueConfig `toml:"queue"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Workers == 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.JobTimeout == 0 {
		c.JobTimeout = 10 * time.Second
	}
	if c.JobRecordTTL == 0 {
		c.JobRecordTTL = 10 * time.Minute
	}
	if c.MaxAppBytes == 0 {
		c.MaxAppBytes = 32 << 20
	}
	c.Limits = c.Limits.WithDefaults()
	c.Queue = c.Queue.WithDefaults()
	return c
}

// Validate reports the first invalid field, by its config key.
func (c Config) Validate() error {
	switch {
	case c.Workers < -1:
		return errs.Param("workers", "must be -1 (accept only), 0 (GOMAXPROCS) or positive")
	case c.JobTimeout < 0:
		return errs.Param("job_timeout", "must not be negative")
	case c.JobRecordTTL < time.Second:
		return errs.Param("job_record_ttl", "must be at least 1s")
	case c.MaxAppBytes < 1024:
		return errs.Param("max_app_bytes", "must be at least 1024")
	case c.PoolSize < 0:
		return errs.Param("pool_size", "must not be negative")
	}
	if err := c.Limits.Validate(); err != nil {
		return prefixParam("limits.", err)
	}
	if err := c.Queue.Validate(); err != nil {
		return prefixParam("queue.", err)
	}
	return nil
}

func prefixParam(prefix string, err error) error {
	if e, ok := err.(*errs.Error); ok && e.Param != "" {
		return errs.Param(prefix+e.Param, "%s", e.Reason())
	}
	return err
}

// jobGoroutines is the most pooled goroutines that run jobs (goPool): a round uses
// at most GOMAXPROCS-1 of them besides its worker, and a process runs a few batches
// at once.
const jobGoroutines = 512

// Caller is who makes a call: an authenticated key and whether it owns the tenant.
type Caller struct {
	PubKey string
	Owner  bool
}

// Publisher receives the events of every commit, after it is durable.
type Publisher interface {
	Publish(ctx context.Context, tenant string, events []store.Event)
}

// Service is the one implementation of every app, context and call operation; the
// JSON-RPC methods and the admin API are thin wrappers over it.
type Service struct {
	cfg            Config
	store          store.Store
	storePublishes bool
	engine         *Engine
	queue          Queue
	pub            Publisher
	log            *slog.Logger
	metrics        *metrics
	now            func() time.Time
	pool           *goPool    // runs the jobs of a round
	metas          *metaCache // contexts for queueCheck, on a store read over the network
}

// NewService wires the service. pub may be nil; reg may be nil.
func NewService(cfg Config, st store.Store, eng *Engine, q Queue, pub Publisher, log *slog.Logger, reg prometheus.Registerer) (*Service, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	sp, _ := st.(selfPublishing)
	s := &Service{cfg: cfg, store: st, storePublishes: sp != nil && sp.PublishesEvents(), engine: eng, queue: q,
		pub: pub, log: log, metrics: m, now: time.Now, pool: newGoPool(jobGoroutines)}
	if !s.ReadsLocally() {
		s.metas = newMetaCache()
	}
	return s, nil
}

// Config returns the configuration with defaults applied.
func (s *Service) Config() Config { return s.cfg }

// ReadsLocally reports whether a query reads its context without a network round
// trip: true on the embedded store, false on the fleet's Redis (a SnapshotReader).
func (s *Service) ReadsLocally() bool {
	_, remote := s.store.(store.SnapshotReader)
	return !remote
}

// RunWorkers runs the queue's workers for this process until ctx ends. With
// Workers = -1 it returns at once.
func (s *Service) RunWorkers(ctx context.Context) error {
	if s.cfg.Workers < 0 {
		return nil
	}
	return s.queue.Run(ctx, s.cfg.Workers, s.handle)
}

// role is what a caller may do in one context.
type role uint8

const (
	roleNone role = iota
	roleReader
	roleMember
	roleOwner
)

func roleIn(c Caller, meta *store.Context) role {
	switch {
	case c.Owner:
		return roleOwner
	case slices.Contains(meta.Members, c.PubKey):
		return roleMember
	case meta.Public:
		return roleReader
	}
	return roleNone
}

// context loads a context and checks that the caller has at least role want.
func (s *Service) context(ctx context.Context, tenant string, c Caller, id string, want role) (store.Context, error) {
	meta, err := s.store.GetContext(ctx, tenant, id)
	if err != nil {
		return meta, err
	}
	return meta, checkRole(c, &meta, want)
}

// checkRole refuses c unless it has at least role want in the context meta.
func checkRole(c Caller, meta *store.Context, want role) error {
	if r := roleIn(c, meta); r < want {
		return errs.E(errs.Forbidden, "%s may not do this in context %s", roleName(r), meta.ID)
	}
	return nil
}

func roleName(r role) string {
	switch r {
	case roleOwner:
		return "the owner"
	case roleMember:
		return "a member"
	case roleReader:
		return "a reader of a public context"
	}
	return "a guest"
}

func requireOwner(c Caller) error {
	if !c.Owner {
		return errs.E(errs.Forbidden, "only the tenant owner may do this")
	}
	return nil
}

// newID returns 16 random bytes as hex.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func digest(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		var n [8]byte
		for i, l := 0, len(p); i < 8; i++ {
			n[i] = byte(l >> (8 * i))
		}
		h.Write(n[:])
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

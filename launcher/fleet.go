package launcher

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/circlegate/circlegate/events"
	"github.com/circlegate/circlegate/execution"
	"github.com/circlegate/circlegate/internal/redisx"
	"github.com/circlegate/circlegate/store"
	"github.com/circlegate/circlegate/tenant"
)

// backends are a process's store, engine, queue and bus: Pebble and in-process ones in
// the embedded mode, Redis ones (sharing one client) in a fleet.
type backends struct {
	redis  redis.UniversalClient // nil when embedded
	Store  store.Store
	Engine *execution.Engine
	Queue  execution.Queue
	Bus    events.Bus
}

// openBackends opens what cfg asks for; on error it closes what it opened.
func openBackends(ctx context.Context, cfg *Config, log *slog.Logger, reg prometheus.Registerer) (b *backends, err error) {
	b = &backends{}
	defer func() {
		if err != nil {
			b.close(log)
		}
	}()
	ec := cfg.Execution.WithDefaults()
	if b.Engine, err = execution.NewEngine(ctx, execution.EngineConfig{CacheDir: ec.CacheDir, Limits: ec.Limits, PoolSize: ec.PoolSize}, log); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	if !cfg.Fleet() {
		b.Store, err = store.OpenPebble(store.PebbleConfig{
			Dir: filepath.Join(cfg.Data, "store"), History: cfg.Store.History,
			CacheBytes: cfg.Store.CacheBytes, MemTableBytes: cfg.Store.MemTableBytes, StateCacheBytes: cfg.Store.StateCacheBytes,
			Logger: log.With("component", "pebble"),
		})
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		qc := ec.Queue
		qc.RecordTTL = ec.JobRecordTTL
		if b.Queue, err = execution.NewMemoryQueue(qc); err != nil {
			return nil, err
		}
		b.Bus = events.NewMemory()
		return b, nil
	}
	prefix := cfg.redisPrefix()
	if b.redis, err = redisx.Open(ctx, cfg.Redis.URL, cfg.Redis.PoolSize); err != nil {
		return nil, err
	}
	if b.Store, err = store.OpenRedis(ctx, store.RedisConfig{Client: b.redis, Prefix: prefix, History: cfg.Store.History}); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	qc := cfg.Redis.Queue
	qc.Client, qc.Prefix, qc.RecordTTL = b.redis, prefix, ec.JobRecordTTL
	if b.Queue, err = execution.NewRedisQueue(ctx, qc, ec.Limits.Timeout, log, reg); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	if b.Bus, err = events.NewRedis(events.RedisConfig{Client: b.redis, Prefix: prefix, Logger: log}); err != nil {
		return nil, err
	}
	return b, nil
}

// close closes everything opened, the Redis client last. The queue must be closed
// already if workers ran on it (stopWorkers).
func (b *backends) close(log *slog.Logger) {
	if b.Queue != nil {
		_ = b.Queue.Close()
	}
	if b.Bus != nil {
		_ = b.Bus.Close()
	}
	if b.Engine != nil {
		_ = b.Engine.Close(context.Background())
	}
	if b.Store != nil {
		if err := b.Store.Close(); err != nil {
			log.Error("close store", "err", err)
		}
	}
	if b.redis != nil {
		_ = b.redis.Close()
	}
}

// fleetSecret returns the token-signing secret every gateway of a fleet shares, so a
// token from one gateway is valid on all: the first gateway stores a random one (SET
// NX), the others read it.
func fleetSecret(ctx context.Context, rdb redis.UniversalClient, prefix string) ([]byte, error) {
	return fleetShared(ctx, rdb, prefix+":node-secret", "fleet secret")
}

// fleetNodeKey returns the node key every gateway of a fleet shares, so that the
// fleet is one node to admin clients: the challenges of every gateway are signed by
// it, and a root's login on one gateway holds on all.
func fleetNodeKey(ctx context.Context, rdb redis.UniversalClient, prefix string) (*secp256k1.PrivateKey, error) {
	b, err := fleetShared(ctx, rdb, prefix+":node-key", "fleet node key")
	if err != nil {
		return nil, err
	}
	k, err := tenant.NodeKeyFromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("fleet node key: %w", err)
	}
	return k, nil
}

// fleetShared returns 32 random bytes kept under key that every gateway of a fleet
// shares: the first gateway stores them (SET NX), the others read them.
func fleetShared(ctx context.Context, rdb redis.UniversalClient, key, what string) ([]byte, error) {
	fresh := make([]byte, 32)
	_, _ = rand.Read(fresh)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.SetNX(ctx, key, fresh, 0).Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	b, err := rdb.Get(ctx, key).Bytes()
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s: %w", what, err)
	case len(b) != 32:
		return nil, errors.New(what + ": " + key + " does not hold 32 bytes")
	}
	return b, nil
}

package store

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/internal/redisx"
)

// RedisConfig configures the Redis backend of a fleet.
type RedisConfig struct {
	// Client is the connection to Redis (a single server or a cluster). Required; the
	// caller owns it and closes it after the store.
	Client redis.UniversalClient
	// Prefix starts every key, so several fleets can share one Redis. Empty means "cg".
	Prefix string
	// History bounds each context's event history; see HistoryConfig for defaults.
	History HistoryConfig
}

// WithDefaults returns c with every zero field set to its default.
func (c RedisConfig) WithDefaults() RedisConfig {
	if c.Prefix == "" {
		c.Prefix = "cg"
	}
	c.History = c.History.WithDefaults()
	return c
}

// Validate reports the first invalid field of c (after WithDefaults).
func (c RedisConfig) Validate() error {
	switch {
	case c.Client == nil:
		return errs.Param("client", "is nil")
	case c.History.MaxEvents < 1:
		return errs.Param("max_events", "must be at least 1")
	case c.History.MaxAge < 0:
		return errs.Param("max_age", "must not be negative")
	}
	return redisx.CheckPrefix(c.Prefix)
}

// Redis is the fleet's Store: every node of a fleet reads and writes the same Redis,
// so it caches nothing. Every key of a context carries the context id as a cluster
// hash tag ({id}) and every key of a tenant's index the tenant, so each write that
// must be atomic is one Lua script on one slot and the store runs on Redis Cluster.
// A context's commit (state, tx, events, idempotency record, head, and the PUBLISH of
// its events) is one script.
//
// Key layout (P is the prefix; C a context id, T a tenant):
//
//	P:c:{C}:h        hash: the head (t tenant, a app, o owner, m members JSON,
//	                 p public, c created ns, s seq, r rootHash, e eventSeq, n state
//	                 keys, b state bytes, v meta version)
//	P:c:{C}:s        hash: state key -> value
//	P:c:{C}:k        sorted set: the state keys, all scores 0 (byte order for scans)
//	P:c:{C}:x        hash: seq -> tx (binary, pebble_codec.go)
//	P:c:{C}:e        stream: the event history, entry 0-<seq>, fields t (ms), e (event)
//	P:c:{C}:i        hash: idempotency key -> record (JSON)
//	P:c:{C}:j:<key>  string with a TTL: an idempotency record that expires
//	P:t:{tT}:apps    hash: app id -> App (JSON)
//	P:t:{tT}:blob:<app>  string: the app's wasm
//	P:t:{tT}:ctx     sorted set: the tenant's context ids, scores 0
//	P:t:{tT}:use:<app>   set: the contexts of an app, for DeleteApp's check
//	P:t:{tT}:r:<kind>    hash: record id -> value
//	P:t:{tT}:ri:<kind>   sorted set: the record ids, scores 0
//	P:ev:{C}:T       pub/sub channel of the context's events (EncodeEventMessage)
//
// Steps that span a context and its tenant's index (create and delete a context,
// delete an app) are ordered so that a crash between them leaves nothing a reader
// can see half done: see CreateContext and DeleteContext.
type Redis struct {
	rdb    redis.UniversalClient
	prefix string
	hist   HistoryConfig
	closed atomic.Bool
	heads  *headReads
}

var _ Store = (*Redis)(nil)

// OpenRedis returns the store of a fleet over cfg.Client and loads its scripts.
func OpenRedis(ctx context.Context, cfg RedisConfig) (*Redis, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Redis{rdb: cfg.Client, prefix: cfg.Prefix, hist: cfg.History}
	for _, s := range scripts.all {
		if err := s.Load(ctx, r.rdb).Err(); err != nil {
			return nil, redisx.Err(err, "load scripts")
		}
	}
	r.startHeadReads()
	return r, nil
}

// Close makes every later call fail. It does not close the client.
func (r *Redis) Close() error {
	if r.closed.CompareAndSwap(false, true) {
		r.stopHeadReads()
	}
	return nil
}

func (r *Redis) enter(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return errs.Wrap(errs.Overloaded, err, "store: call canceled")
	}
	if r.closed.Load() {
		return errClosed
	}
	return nil
}

//go:embed lua/*.lua
var luaFS embed.FS

// scripts are the Lua scripts of the backend; commit and create share lib.lua.
var scripts = func() (s struct {
	commit, create, members, del, scan, txlog, events, snapshot, putApp, delApp, putRecord, delRecord, listRecords *redis.Script
	all                                                                                                            []*redis.Script
}) {
	read := func(name string) string {
		b, err := luaFS.ReadFile("lua/" + name + ".lua")
		if err != nil {
			panic(err)
		}
		return string(b)
	}
	lib := read("lib")
	mk := func(name string, withLib bool) *redis.Script {
		src := read(name)
		if withLib {
			src = lib + "\n" + src
		}
		sc := redis.NewScript(src)
		s.all = append(s.all, sc)
		return sc
	}
	s.commit, s.create, s.members = mk("commit", true), mk("create", true), mk("members", true)
	s.del, s.scan, s.txlog, s.events = mk("delete", false), mk("scan", false), mk("txlog", false), mk("events", false)
	s.snapshot = mk("snapshot", false)
	s.putApp, s.delApp = mk("putapp", false), mk("delapp", false)
	s.putRecord, s.delRecord, s.listRecords = mk("putrecord", false), mk("delrecord", false), mk("listrecords", false)
	return s
}()

// ctxKeys are the keys of one context.
type ctxKeys struct {
	head, state, keys, txs, events, idem, idemTTL string
}

func (r *Redis) ctxKeys(id string) ctxKeys {
	b := r.prefix + ":c:{" + id + "}:"
	return ctxKeys{head: b + "h", state: b + "s", keys: b + "k", txs: b + "x", events: b + "e", idem: b + "i", idemTTL: b + "j:"}
}

// tenantBase is the start of a tenant's keys; the t in the tag keeps the node's
// own records (tenant "") in one slot too.
func (r *Redis) tenantBase(tenant string) string { return r.prefix + ":t:{t" + tenant + "}:" }

// RedisEventChannel is the pub/sub channel on which the Redis backend with key prefix
// prefix publishes the events of a tenant's context (EncodeEventMessage). It names
// the tenant too, so that a node's subscription to it is one topic of its broker.
func RedisEventChannel(prefix, tenant, contextID string) string {
	return prefix + ":ev:{" + contextID + "}:" + tenant
}

// validID reports whether an id can be part of a key: the braces of a hash tag would
// let one context's keys reach another's.
func validID(id string) bool { return id != "" && !strings.ContainsAny(id, "{}") }

func notFoundContext(id string) error { return errs.E(errs.NotFound, "context %s not found", id) }

// headFields are the head fields GetContext reads, in this order.
var headFields = []string{"t", "a", "o", "m", "p", "c", "s", "r", "e", "n", "b", "v"}

// redisHead is a decoded head.
type redisHead struct {
	Context
	keys, bytes int64
	version     string
}

// readHead reads a context's head; NotFound if it does not exist (in tenant, unless
// tenant is nil).
func (r *Redis) readHead(ctx context.Context, id string) (redisHead, error) {
	if !validID(id) {
		return redisHead{}, notFoundContext(id)
	}
	vals, err := r.readHeadVals(ctx, id)
	if err != nil {
		return redisHead{}, err
	}
	return decodeHead(id, vals)
}

func decodeHead(id string, vals []any) (redisHead, error) {
	str := func(i int) string { s, _ := vals[i].(string); return s }
	num := func(i int) int64 { n, _ := strconv.ParseInt(str(i), 10, 64); return n }
	if vals[0] == nil {
		return redisHead{}, notFoundContext(id)
	}
	h := redisHead{keys: num(9), bytes: num(10), version: str(11)}
	h.ID, h.Tenant, h.AppID, h.Owner = id, str(0), str(1), str(2)
	if err := json.Unmarshal([]byte(str(3)), &h.Members); err != nil {
		return redisHead{}, errs.Wrap(errs.Internal, err, "store: decode members of %s", id)
	}
	h.Public = str(4) == "1"
	h.CreatedAt = time.Unix(0, num(5)).UTC()
	h.Seq, h.RootHash, h.EventSeq = uint64(num(6)), str(7), uint64(num(8))
	return h, nil
}

// tenantHead is readHead that also reports NotFound for another tenant's context.
func (r *Redis) tenantHead(ctx context.Context, tenant, id string) (redisHead, error) {
	h, err := r.readHead(ctx, id)
	if err == nil && h.Tenant != tenant {
		return redisHead{}, notFoundContext(id)
	}
	return h, err
}

// run runs a script and maps its error.
func (r *Redis) run(ctx context.Context, s *redis.Script, what string, keys []string, args ...any) (any, error) {
	v, err := s.Run(ctx, r.rdb, keys, args...).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return v, redisx.Err(err, what)
}

// cutoffMs is the time before which events have expired, in Unix ms.
func (r *Redis) cutoffMs() int64 { return time.Now().Add(-r.hist.MaxAge).UnixMilli() }

// maxSeqArg bounds a seq passed to a script: Lua numbers are doubles.
func maxSeqArg(seq uint64) uint64 { return min(seq, 1<<52) }

// Prefix returns the key prefix.
func (r *Redis) Prefix() string { return r.prefix }

// PublishesEvents reports that every write of this store that appends events also
// publishes them (on RedisEventChannel), in the same script: a fleet's event bus need
// not publish them again.
func (r *Redis) PublishesEvents() bool { return true }

// EachContext calls fn for every context of every tenant (in no set order): a SCAN
// over the heads, on every master of a cluster. It is how `circlegate verify --redis`
// walks a fleet.
func (r *Redis) EachContext(ctx context.Context, fn func(Context) error) error {
	if err := r.enter(ctx); err != nil {
		return err
	}
	scan := func(ctx context.Context, c redis.Cmdable) error {
		it := c.Scan(ctx, 0, r.prefix+":c:{*}:h", 1000).Iterator()
		for it.Next(ctx) {
			key := it.Val()
			id := key[len(r.prefix)+4 : len(key)-3] // P:c:{id}:h
			h, err := r.readHead(ctx, id)
			if errs.Is(err, errs.NotFound) {
				continue // deleted meanwhile
			}
			if err != nil {
				return err
			}
			if err := fn(h.Context); err != nil {
				return err
			}
		}
		return redisx.Err(it.Err(), "scan contexts")
	}
	if cc, ok := r.rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	}
	return scan(ctx, r.rdb)
}

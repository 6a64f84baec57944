package tenant

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/circlegate/circlegate/internal/redisx"
)

// RedisNonceStore is a NonceStore in Redis, shared by every gateway of a fleet: a
// browser that fetches its nonce through one gateway may authenticate through
// another. The bounds, the TTL and the clock are those of NonceConfig, as in
// MemoryNonceStore; each operation is one Lua script, so it is atomic.
//
// Keys (P is the prefix, T the tenant; both keys of a tenant share the hash tag {nT},
// so the fleet also runs on Redis Cluster):
//
//	P:n:{nT}        sorted set of "pubkey value": the tenant's nonces, for its bound
//	P:n:{nT}:pubkey sorted set of value: one key's nonces
//
// A nonce's score is its expiry in Unix milliseconds times 1024 plus a sequence
// number of the issuing store modulo 1024, so the nonces one gateway issues within a
// millisecond keep their order (oldest evicted first, newest tried first).
//
// Both expire with the newest nonce in them, so an abandoned tenant or key leaves
// nothing behind.
type RedisNonceStore struct {
	cfg    NonceConfig
	rdb    redis.UniversalClient
	prefix string
	seq    atomic.Uint64
}

// scoreBits is how many low bits of a score hold the sequence number.
const scoreBits = 10

// lastScore is the highest score of a nonce expiring at or before t.
func lastScore(t time.Time) int64 { return t.UnixMilli()<<scoreBits | (1<<scoreBits - 1) }

var _ NonceStore = (*RedisNonceStore)(nil)

// NewRedisNonceStore returns the store on rdb under prefix, configured by cfg with
// defaults applied.
func NewRedisNonceStore(rdb redis.UniversalClient, prefix string, cfg NonceConfig) *RedisNonceStore {
	return &RedisNonceStore{cfg: cfg.withDefaults(), rdb: rdb, prefix: prefix}
}

func (s *RedisNonceStore) keys(tenant, pubkey string) []string {
	t := s.prefix + ":n:{n" + tenant + "}"
	return []string{t, t + ":" + pubkey}
}

// issueScript adds a nonce after dropping the expired ones of the tenant and of the
// key, then the key's oldest beyond its bound and the tenant's oldest beyond its.
// KEYS: tenant set, key set. ARGV: value, pubkey, last expired score, score, max per
// key, max per tenant, key TTL ms. Returns the number of live nonces evicted.
var issueScript = redis.NewScript(`
local tk, kk = KEYS[1], KEYS[2]
local value, pubkey, expired, exp = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local perKey, perTenant, ttl = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
redis.call('ZREMRANGEBYSCORE', tk, '-inf', expired)
redis.call('ZREMRANGEBYSCORE', kk, '-inf', expired)
local evicted = 0
local over = redis.call('ZCARD', kk) + 1 - perKey
if over > 0 then
  for i, v in ipairs(redis.call('ZPOPMIN', kk, over)) do
    if i % 2 == 1 then
      redis.call('ZREM', tk, pubkey .. ' ' .. v)
      evicted = evicted + 1
    end
  end
end
over = redis.call('ZCARD', tk) + 1 - perTenant
if over > 0 then
  for i, m in ipairs(redis.call('ZPOPMIN', tk, over)) do
    if i % 2 == 1 then
      local sp = string.find(m, ' ', 1, true)
      redis.call('ZREM', tk .. ':' .. string.sub(m, 1, sp - 1), string.sub(m, sp + 1))
      evicted = evicted + 1
    end
  end
end
redis.call('ZADD', kk, exp, value)
redis.call('ZADD', tk, exp, pubkey .. ' ' .. value)
redis.call('PEXPIRE', kk, ttl)
redis.call('PEXPIRE', tk, ttl)
return evicted
`)

// consumeScript removes a nonce of the key if it is there and unexpired.
// KEYS: tenant set, key set. ARGV: value, pubkey, last expired score. Returns 1 when
// consumed.
var consumeScript = redis.NewScript(`
local exp = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not exp then
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[2] .. ' ' .. ARGV[1])
if tonumber(exp) <= tonumber(ARGV[3]) then
  return 0
end
return 1
`)

// Issue creates a nonce for pubkey in tenant.
func (s *RedisNonceStore) Issue(ctx context.Context, tenant, pubkey string) (Nonce, error) {
	now := s.cfg.Now()
	n := Nonce{Value: newNonceValue(), ExpiresAt: now.Add(s.cfg.TTL)}
	score := n.ExpiresAt.UnixMilli()<<scoreBits | int64(s.seq.Add(1)%(1<<scoreBits))
	args := []any{n.Value, pubkey, lastScore(now), score, s.cfg.MaxPerKey, s.cfg.MaxPerTenant, (s.cfg.TTL + time.Second).Milliseconds()}
	if err := issueScript.Run(ctx, s.rdb, s.keys(tenant, pubkey), args...).Err(); err != nil {
		return Nonce{}, redisx.Err(err, "issue a nonce")
	}
	return n, nil
}

// Consume removes the nonce value if it was issued for tenant and pubkey and has not
// expired.
func (s *RedisNonceStore) Consume(ctx context.Context, tenant, pubkey, value string) error {
	if value == "" {
		return errBadNonce()
	}
	ok, err := consumeScript.Run(ctx, s.rdb, s.keys(tenant, pubkey), value, pubkey, lastScore(s.cfg.Now())).Int()
	if err != nil {
		return redisx.Err(err, "consume a nonce")
	}
	if ok != 1 {
		return errBadNonce()
	}
	return nil
}

// Outstanding returns the unexpired nonces of pubkey in tenant, newest first.
func (s *RedisNonceStore) Outstanding(ctx context.Context, tenant, pubkey string) ([]string, error) {
	after := "(" + strconv.FormatInt(lastScore(s.cfg.Now()), 10)
	vs, err := s.rdb.ZRevRangeByScore(ctx, s.keys(tenant, pubkey)[1], &redis.ZRangeBy{Min: after, Max: "+inf"}).Result()
	if err != nil {
		return nil, redisx.Err(err, "read nonces")
	}
	return vs, nil
}

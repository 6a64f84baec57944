-- Delete a context and everything in it (idempotency keys with a TTL expire alone).
-- KEYS: 1 head, 2 state, 3 state keys, 4 tx log, 5 events, 6 idempotency hash
-- ARGV: 1 tenant
-- Returns the context's app id, or false when it does not exist in this tenant.
local app = redis.call('HMGET', KEYS[1], 't', 'a')
if not app[1] or app[1] ~= ARGV[1] then
  return false
end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
return app[2]

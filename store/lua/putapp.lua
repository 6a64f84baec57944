-- Install an app in a tenant unless it is there already.
-- KEYS: 1 the tenant's apps, 2 the app's blob
-- ARGV: 1 app id, 2 metadata (JSON), 3 blob
-- Returns the existing metadata, or false when this call installed it.
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  return old
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
return false

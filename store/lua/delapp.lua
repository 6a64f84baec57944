-- Uninstall an app unless a context uses it.
-- KEYS: 1 the tenant's apps, 2 the app's blob, 3 the app's contexts
-- ARGV: 1 app id, then ids of deleted contexts to drop from KEYS[3] first
-- Returns 'ok', 'notfound', or up to 16 context ids that use the app (the caller
-- checks they still exist and calls again with those that do not).
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return 'notfound'
end
for i = 2, #ARGV do
  redis.call('SREM', KEYS[3], ARGV[i])
end
local users = redis.call('SRANDMEMBER', KEYS[3], 16)
if #users > 0 then
  return users
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3])
return 'ok'

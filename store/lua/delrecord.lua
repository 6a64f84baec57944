-- KEYS: 1 records, 2 their ids; ARGV: 1 id. Returns 1 if it existed, else 0.
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 1
end
return 0

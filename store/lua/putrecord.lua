-- KEYS: 1 records (id -> value), 2 their ids (sorted set); ARGV: 1 id, 2 value
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 'ok'

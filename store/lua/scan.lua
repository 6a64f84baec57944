-- Read up to ARGV[3] state entries whose keys lie in the lex range ARGV[1]..ARGV[2].
-- KEYS: 1 head, 2 state, 3 state keys
-- Returns key, value, key, value, ... or false when the context does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
local keys = redis.call('ZRANGE', KEYS[3], ARGV[1], ARGV[2], 'BYLEX', 'LIMIT', 0, ARGV[3])
local out = {}
for from = 1, #keys, 500 do
  local to = math.min(from + 499, #keys)
  local vals = redis.call('HMGET', KEYS[2], unpack(keys, from, to))
  for j = from, to do
    out[#out + 1] = keys[j]
    out[#out + 1] = vals[j - from + 1] or ''
  end
end
return out

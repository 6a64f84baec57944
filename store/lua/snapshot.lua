-- Read the heads of contexts and, for each whose state is at most ARGV[1] bytes, its
-- whole state, at one instant (a worker's round reads its contexts this way).
-- KEYS: per context 2: head, state
-- ARGV: 1 max state bytes, 2 the position of the state bytes (b) among the fields,
--       3.. the head fields
-- Returns per context {head values, state}: state is HGETALL's key, value list, or
-- false when the state is larger or the context does not exist.
local max, b = tonumber(ARGV[1]), tonumber(ARGV[2])
local fields = {unpack(ARGV, 3)}
local out = {}
for c = 1, #KEYS / 2 do
  local head = redis.call('HMGET', KEYS[2 * c - 1], unpack(fields))
  local state = false
  if head[1] and (tonumber(head[b]) or 0) <= max then
    state = redis.call('HGETALL', KEYS[2 * c])
  end
  out[c] = {head, state}
end
return out

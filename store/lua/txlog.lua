-- Read the txs of a context with seq ARGV[1] .. ARGV[1]+ARGV[2]-1 (up to its seq).
-- KEYS: 1 head, 2 tx log
-- Returns the encoded txs in order, or false when the context does not exist.
local seq = redis.call('HGET', KEYS[1], 's')
if not seq then
  return false
end
local from = tonumber(ARGV[1])
local to = math.min(tonumber(seq), from + tonumber(ARGV[2]) - 1)
local out = {}
for lo = from, to, 500 do
  local fields = {}
  for s = lo, math.min(lo + 499, to) do
    fields[#fields + 1] = s
  end
  local txs = redis.call('HMGET', KEYS[2], unpack(fields))
  for j = 1, #fields do
    out[#out + 1] = txs[j] or ''
  end
end
return out

-- List records by id: ARGV 1 min, 2 max (lex ranges), 3 limit, 4 '1' for descending.
-- KEYS: 1 records, 2 their ids. Returns id, value, id, value, ...
local ids
if ARGV[4] == '1' then
  ids = redis.call('ZRANGE', KEYS[2], ARGV[2], ARGV[1], 'BYLEX', 'REV', 'LIMIT', 0, ARGV[3])
else
  ids = redis.call('ZRANGE', KEYS[2], ARGV[1], ARGV[2], 'BYLEX', 'LIMIT', 0, ARGV[3])
end
local out = {}
for from = 1, #ids, 500 do
  local to = math.min(from + 499, #ids)
  local vals = redis.call('HMGET', KEYS[1], unpack(ids, from, to))
  for j = from, to do
    out[#out + 1] = ids[j]
    out[#out + 1] = vals[j - from + 1] or ''
  end
end
return out

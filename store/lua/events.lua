-- Read up to ARGV[2] events of a context with seq >= ARGV[1], never one that expired
-- (time < ARGV[3] ms), and the seq of the oldest event that has not.
-- KEYS: 1 head, 2 events
-- Returns oldest, event, event, ... (oldest 0 and no events when history is empty),
-- or false when the context does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
local cutoff = tonumber(ARGV[3])
local oldest = nil
local cursor = '-'
while not oldest do
  local batch = redis.call('XRANGE', KEYS[2], cursor, '+', 'COUNT', 128)
  if #batch == 0 then
    return {0}
  end
  for _, en in ipairs(batch) do
    if tonumber(en[2][2]) >= cutoff then
      oldest = tonumber(string.sub(en[1], 3))
      break
    end
  end
  cursor = '(' .. batch[#batch][1]
end
local from = math.max(oldest, tonumber(ARGV[1]))
local out = {oldest}
local entries = redis.call('XRANGE', KEYS[2], string.format('0-%d', from), '+', 'COUNT', ARGV[2])
for _, en in ipairs(entries) do
  out[#out + 1] = en[2][4]
end
return out

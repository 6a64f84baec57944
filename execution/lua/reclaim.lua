-- Claim for this consumer the jobs pending longer than the visibility timeout (their
-- worker died or stalled), with their delivery counts.
-- KEYS: 1 the job stream, 2 the fleet's queue counters (hash)
-- ARGV: 1 group, 2 consumer, 3 min idle ms, 4 start id, 5 count
-- Returns the next start id (0-0 when the pending list was scanned to its end), then
-- per claimed job: entry id, deliveries, job id, accepting node, job (JSON).
local res = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local out = {res[1]}
for _, en in ipairs(res[2]) do
  if en and en[2] then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], en[1], en[1], 1)
    local f = {}
    for j = 1, #en[2], 2 do
      f[en[2][j]] = en[2][j + 1]
    end
    out[#out + 1] = en[1]
    out[#out + 1] = p[1] and p[1][4] or 1
    out[#out + 1] = f['id'] or ''
    out[#out + 1] = f['n'] or ''
    out[#out + 1] = f['j'] or ''
  end
end
if #out > 1 then
  redis.call('HINCRBY', KEYS[2], 'reclaimed', (#out - 1) / 5)
end
return out

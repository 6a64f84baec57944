-- Queue jobs, each unless the queue holds capacity jobs already.
-- KEYS: 1 the job stream, then per job its record
-- ARGV: 1 capacity, 2 record TTL ms, then per job: job id, accepting node, job (JSON),
--       record (JSON)
-- Returns per job 1, or 0 when the queue was full. Acknowledged entries are deleted
-- from the stream (ack.lua), so its length is the number of jobs waiting or running.
local room = tonumber(ARGV[1]) - redis.call('XLEN', KEYS[1])
local out = {}
for j = 2, #KEYS do
  local a = 3 + (j - 2) * 4
  if room > 0 then
    redis.call('XADD', KEYS[1], '*', 'id', ARGV[a], 'n', ARGV[a + 1], 'j', ARGV[a + 2])
    redis.call('SET', KEYS[j], ARGV[a + 3], 'PX', ARGV[2])
    room = room - 1
    out[j - 1] = 1
  else
    out[j - 1] = 0
  end
end
return out

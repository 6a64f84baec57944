-- Queue a job unless the queue holds capacity jobs already.
-- KEYS: 1 the job stream, 2 the job's record
-- ARGV: 1 capacity, 2 job id, 3 accepting node, 4 job (JSON), 5 record (JSON), 6 record TTL ms
-- Returns 1, or 0 when the queue is full. Acknowledged entries are deleted from the
-- stream (ack.lua), so its length is the number of jobs waiting or running.
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('XADD', KEYS[1], '*', 'id', ARGV[2], 'n', ARGV[3], 'j', ARGV[4])
redis.call('SET', KEYS[2], ARGV[5], 'PX', ARGV[6])
return 1

-- Move a job that was delivered too often to the dead-letter stream, store its dead
-- record and tell the node that accepted it, unless another worker acknowledged it.
-- KEYS: 1 the job stream, 2 the dead-letter stream, 3 the job's record, 4 the fleet's
--       queue counters (hash)
-- ARGV: 1 group, 2 entry id, 3 dead letters kept, 4 job id, 5 node, 6 job (JSON),
--       7 deliveries, 8 reason, 9 record (JSON), 10 record TTL ms, 11 reply channel
-- Returns 1 if it moved the job, else 0.
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'id', ARGV[4], 'n', ARGV[5], 'j', ARGV[6],
  'deliveries', ARGV[7], 'reason', ARGV[8])
redis.call('SET', KEYS[3], ARGV[9], 'PX', ARGV[10])
redis.call('HINCRBY', KEYS[4], 'dead_lettered', 1)
if ARGV[11] ~= '' then
  redis.call('PUBLISH', ARGV[11], '[' .. ARGV[9] .. ']')
end
return 1

-- Acknowledge finished jobs: for each one still pending, XACK and XDEL its entry,
-- store its record, and reply to the node that accepted it (one message per node).
-- KEYS: 1 the job stream, 2.. the jobs' records
-- ARGV: 1 group, 2 record TTL ms, 3 reply channel prefix, then per job:
--       entry id, accepting node, record (JSON)
-- Returns the number of jobs acknowledged here (a job another worker acknowledged
-- first keeps that worker's record and reply).
local replies = {}
local nodes = {}
local acked = 0
for i = 2, #KEYS do
  local a = 4 + (i - 2) * 3
  local id, node, rec = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  if redis.call('XACK', KEYS[1], ARGV[1], id) == 1 then
    acked = acked + 1
    redis.call('XDEL', KEYS[1], id)
    redis.call('SET', KEYS[i], rec, 'PX', ARGV[2])
    if node ~= '' then
      if not replies[node] then
        replies[node] = {}
        nodes[#nodes + 1] = node
      end
      local r = replies[node]
      r[#r + 1] = rec
    end
  end
end
for _, node in ipairs(nodes) do
  redis.call('PUBLISH', ARGV[3] .. node, '[' .. table.concat(replies[node], ',') .. ']')
end
return acked

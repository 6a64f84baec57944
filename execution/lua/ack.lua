-- Acknowledge finished jobs: of those still pending (another worker may have
-- acknowledged a redelivered one first), XACK and XDEL the entries, store the records,
-- and reply to the nodes that accepted them (one message per node).
-- KEYS: 1 the job stream, 2.. the jobs' records
-- ARGV: 1 group, 2 record TTL ms, 3 reply channel prefix, then per job:
--       entry id, accepting node, record (JSON)
-- Returns the number of jobs acknowledged here.
-- XACK one id at a time says which ids were still pending. (One XCLAIM ... JUSTID
-- for the batch would say it too, but Redis writes an XCLAIM per id to the
-- append-only file, about 210 bytes per job, against 60 for an XACK.) When Redis
-- lost the stream or the group, XACK finds nothing pending and the script returns 0:
-- those jobs' entries are gone, and their gateways learn it from their sweeps.
local at = {}
local pending = {}
for i = 2, #KEYS do
  local id = ARGV[4 + (i - 2) * 3]
  if redis.call('XACK', KEYS[1], ARGV[1], id) == 1 then
    pending[#pending + 1] = id
    at[id] = i
  end
end
if #pending == 0 then
  return 0
end
redis.call('XDEL', KEYS[1], unpack(pending))
local replies = {}
local nodes = {}
for _, id in ipairs(pending) do
  local i = at[id]
  local a = 4 + (i - 2) * 3
  local node, rec = ARGV[a + 1], ARGV[a + 2]
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
for _, node in ipairs(nodes) do
  redis.call('PUBLISH', ARGV[3] .. node, '[' .. table.concat(replies[node], ',') .. ']')
end
return #pending

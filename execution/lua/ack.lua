-- Acknowledge finished jobs: of those still pending (another worker may have
-- acknowledged a redelivered one first), XACK and XDEL the entries, store the records,
-- and reply to the nodes that accepted them (one message per node).
-- KEYS: 1 the job stream, 2.. the jobs' records
-- ARGV: 1 group, 2 consumer, 3 record TTL ms, 4 reply channel prefix, then per job:
--       entry id, accepting node, record (JSON)
-- Returns the number of jobs acknowledged here.
-- XCLAIM ... JUSTID returns the ids still pending (and makes them this consumer's).
local claim = {KEYS[1], ARGV[1], ARGV[2], 0}
local at = {}
for i = 2, #KEYS do
  local id = ARGV[5 + (i - 2) * 3]
  claim[#claim + 1] = id
  at[id] = i
end
claim[#claim + 1] = 'JUSTID'
local pending = redis.call('XCLAIM', unpack(claim))
if #pending == 0 then
  return 0
end
redis.call('XACK', KEYS[1], ARGV[1], unpack(pending))
redis.call('XDEL', KEYS[1], unpack(pending))
local replies = {}
local nodes = {}
for _, id in ipairs(pending) do
  local i = at[id]
  local a = 5 + (i - 2) * 3
  local node, rec = ARGV[a + 1], ARGV[a + 2]
  redis.call('SET', KEYS[i], rec, 'PX', ARGV[3])
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
  redis.call('PUBLISH', ARGV[4] .. node, '[' .. table.concat(replies[node], ',') .. ']')
end
return #pending

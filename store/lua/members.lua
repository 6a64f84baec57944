-- Replace a context's members and append one event, if nothing changed since the
-- caller read the head (its meta version and event seq).
-- KEYS: 1 head, 2 events
-- ARGV: 1 tenant, 2 version read, 3 event seq read, 4 members (JSON), 5 event seq,
--       6 event time ms, 7 event, 8 max events, 9 cutoff ms, 10 channel, 11 message
-- Returns 'ok', 'notfound' or 'retry'.
local h = KEYS[1]
local cur = redis.call('HMGET', h, 't', 'v', 'e')
if not cur[1] or cur[1] ~= ARGV[1] then
  return 'notfound'
end
if cur[2] ~= ARGV[2] or cur[3] ~= ARGV[3] then
  return 'retry'
end
append_events(KEYS[2], 5, 1, tonumber(cur[3]), tonumber(ARGV[8]), tonumber(ARGV[9]))
redis.call('HSET', h, 'm', ARGV[4], 'v', tonumber(ARGV[2]) + 1, 'e', ARGV[5])
if ARGV[10] ~= '' then
  redis.call('PUBLISH', ARGV[10], ARGV[11])
end
return 'ok'

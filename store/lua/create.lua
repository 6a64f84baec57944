-- Create a context with its genesis tx, atomically.
-- KEYS: 1 head, 2 state, 3 state keys, 4 tx log, 5 events
-- ARGV: 1 tenant, 2 app, 3 owner, 4 members (JSON), 5 public (0/1), 6 created (Unix ns),
--       7 genesis hash, 8 genesis tx, 9 events, 10 max events, 11 cutoff ms, 12 channel,
--       13 message, 14 writes, then the writes, then the events.
-- Returns 'ok' or 'conflict' (the id exists, in any tenant).
local h = KEYS[1]
if redis.call('EXISTS', h) == 1 then
  return 'conflict'
end
local dn, db, i = apply_writes(KEYS[2], KEYS[3], 15, tonumber(ARGV[14]))
redis.call('HSET', KEYS[4], '0', ARGV[8])
-- prev -64 makes the first append look at expiry.
local last = append_events(KEYS[5], i, tonumber(ARGV[9]), -64, tonumber(ARGV[10]), tonumber(ARGV[11]))
redis.call('HSET', h, 't', ARGV[1], 'a', ARGV[2], 'o', ARGV[3], 'm', ARGV[4], 'p', ARGV[5],
  'c', ARGV[6], 's', '0', 'r', ARGV[7], 'e', last or '0', 'n', dn, 'b', db, 'v', '0')
if ARGV[12] ~= '' then
  redis.call('PUBLISH', ARGV[12], ARGV[13])
end
return 'ok'

-- Commit one tx to a context, atomically.
-- KEYS: 1 head, 2 state, 3 state keys, 4 tx log, 5 events, 6 idempotency hash,
--       7 idempotency key with a TTL (or a placeholder of the same slot)
-- ARGV: 1 tenant, 2 expected seq, 3 new seq, 4 prev hash, 5 new hash, 6 first event seq,
--       7 events, 8 tx, 9 idempotency key, 10 its record, 11 its TTL in ms (0: kept),
--       12 channel, 13 message, 14 max events, 15 cutoff ms, 16 writes,
--       then the writes, then the events.
-- Returns 'ok', 'notfound', 'stale' (seq or event seq moved), 'taken' (the
-- idempotency key is recorded already) or 'prevhash' (the tx does not chain).
local h = KEYS[1]
local head = redis.call('HMGET', h, 't', 's', 'r', 'e')
if not head[1] or head[1] ~= ARGV[1] then
  return 'notfound'
end
if head[2] ~= ARGV[2] then
  return 'stale'
end
local nev = tonumber(ARGV[7])
if nev > 0 and tonumber(head[4]) + 1 ~= tonumber(ARGV[6]) then
  return 'stale'
end
if head[3] ~= ARGV[4] then
  return 'prevhash'
end
local idem = ARGV[9]
if idem ~= '' and (redis.call('HEXISTS', KEYS[6], idem) == 1 or redis.call('EXISTS', KEYS[7]) == 1) then
  return 'taken'
end
local dn, db, i = apply_writes(KEYS[2], KEYS[3], 17, tonumber(ARGV[16]))
redis.call('HSET', KEYS[4], ARGV[3], ARGV[8])
local last = append_events(KEYS[5], i, nev)
if last then
  trim_events(KEYS[5], last, tonumber(ARGV[14]), tonumber(ARGV[15]))
  redis.call('HSET', h, 's', ARGV[3], 'r', ARGV[5], 'e', last)
else
  redis.call('HSET', h, 's', ARGV[3], 'r', ARGV[5])
end
if dn ~= 0 then
  redis.call('HINCRBY', h, 'n', dn)
end
if db ~= 0 then
  redis.call('HINCRBY', h, 'b', db)
end
if idem ~= '' then
  local ttl = tonumber(ARGV[11])
  if ttl > 0 then
    redis.call('SET', KEYS[7], ARGV[10], 'PX', ttl)
  else
    redis.call('HSET', KEYS[6], idem, ARGV[10])
  end
end
if ARGV[12] ~= '' then
  redis.call('PUBLISH', ARGV[12], ARGV[13])
end
return 'ok'

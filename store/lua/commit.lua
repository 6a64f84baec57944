-- Commit txs to contexts, each atomically and independently of the others (one call
-- carries the commits of a worker's round that share a cluster slot: all of them on a
-- single server).
-- KEYS: per commit, 7: head, state, state keys, tx log, events, idempotency hash,
--       idempotency key with a TTL (or a placeholder of the same slot)
-- ARGV: 1 max events, 2 cutoff ms, then per commit: its number of args, then
--       1 tenant, 2 expected seq, 3 new seq, 4 prev hash, 5 new hash, 6 first event seq,
--       7 events, 8 tx, 9 idempotency key, 10 its record, 11 its TTL in ms (0: kept),
--       12 channel, 13 message, 14 writes, then the writes, then the events.
-- Returns per commit 'ok', 'notfound', 'stale' (seq or event seq moved), 'taken' (the
-- idempotency key is recorded already, whether or not the seq moved) or 'prevhash'
-- (the tx does not chain).
local max, cutoff = tonumber(ARGV[1]), tonumber(ARGV[2])

-- stale tells a commit that lost a race whether its idempotency key is recorded (the
-- call committed before, perhaps in the commit that moved the seq): only this path
-- pays for the look-up; a commit on the current seq checks the key as it records it.
local function stale(k, idem, ttl)
  if idem ~= '' then
    local found
    if ttl > 0 then
      found = redis.call('EXISTS', KEYS[k + 6])
    else
      found = redis.call('HEXISTS', KEYS[k + 5], idem)
    end
    if found == 1 then
      return 'taken'
    end
  end
  return 'stale'
end

local function commit(k, a)
  local h = KEYS[k]
  local head = redis.call('HMGET', h, 't', 's', 'r', 'e', 'n', 'b')
  if not head[1] or head[1] ~= ARGV[a] then
    return 'notfound'
  end
  local idem, ttl = ARGV[a + 8], tonumber(ARGV[a + 10])
  if head[2] ~= ARGV[a + 1] then
    return stale(k, idem, ttl)
  end
  local nev = tonumber(ARGV[a + 6])
  local eseq = tonumber(head[4])
  if nev > 0 and eseq + 1 ~= tonumber(ARGV[a + 5]) then
    return stale(k, idem, ttl)
  end
  if head[3] ~= ARGV[a + 3] then
    return 'prevhash'
  end
  -- The idempotency record is written here, only if absent, so that one call both
  -- checks and records it: nothing below can refuse the commit.
  if idem ~= '' then
    local put
    if ttl > 0 then
      put = redis.call('SET', KEYS[k + 6], ARGV[a + 9], 'PX', ttl, 'NX')
    else
      put = redis.call('HSETNX', KEYS[k + 5], idem, ARGV[a + 9]) == 1
    end
    if not put then
      return 'taken'
    end
  end
  local dn, db, i = apply_writes(KEYS[k + 1], KEYS[k + 2], a + 14, tonumber(ARGV[a + 13]))
  redis.call('HSET', KEYS[k + 3], ARGV[a + 2], ARGV[a + 7])
  local last = append_events(KEYS[k + 4], i, nev, eseq, max, cutoff)
  redis.call('HSET', h, 's', ARGV[a + 2], 'r', ARGV[a + 4], 'e', last or eseq,
    'n', (tonumber(head[5]) or 0) + dn, 'b', (tonumber(head[6]) or 0) + db)
  if ARGV[a + 11] ~= '' then
    redis.call('PUBLISH', ARGV[a + 11], ARGV[a + 12])
  end
  return 'ok'
end

local out = {}
local a = 3
for c = 1, #KEYS / 7 do
  local argc = tonumber(ARGV[a])
  out[c] = commit(7 * (c - 1) + 1, a + 1)
  a = a + 1 + argc
end
return out

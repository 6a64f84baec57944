-- Shared functions of the commit, create and members scripts (prepended to each).
-- Every redis.call costs a few microseconds of Lua conversions, which is most of a
-- commit's cost in Redis, so these make as few as they can.
--
-- Writes come in ARGV from index i as records: 'd', key  |  's', key, value.
-- State is a hash (key -> value) plus a sorted set of the keys (all scores 0), so that
-- scans run in byte order with ZRANGE BYLEX. The head keeps the number of keys (n) and
-- their key+value bytes (b) exact.
local function apply_writes(s, k, i, count)
  local dn, db = 0, 0
  for _ = 1, count do
    local op, key = ARGV[i], ARGV[i + 1]
    local old = redis.call('HSTRLEN', s, key)
    if op == 'd' then
      if redis.call('HDEL', s, key) == 1 then
        redis.call('ZREM', k, key)
        dn = dn - 1
        db = db - #key - old
      end
      i = i + 2
    else
      local val = ARGV[i + 2]
      if redis.call('HSET', s, key, val) == 1 then
        redis.call('ZADD', k, 0, key)
        dn = dn + 1
        db = db + #key + #val
      else
        db = db + #val - old
      end
      i = i + 3
    end
  end
  return dn, db, i
end

-- id returns the stream entry id of an event seq.
local function id(seq)
  return string.format('0-%d', seq)
end

-- append_events adds events (records in ARGV from i: seq, time in ms, encoded event)
-- as stream entries 0-<seq> with fields t (time) and e (the event), so history reads
-- by seq. XADD's exact MAXLEN keeps at most max of them (history is contiguous, so
-- that is the newest max seqs). Every 64 seqs it also drops the expired events at
-- the old end (time < cutoff ms), looking at no more than 256; readers skip the
-- expired ones that linger. It returns the last seq appended (nil if none) and the
-- next ARGV index.
local function append_events(e, i, count, prev, max, cutoff)
  local last = nil
  for _ = 1, count do
    redis.call('XADD', e, 'MAXLEN', '=', max, '0-' .. ARGV[i], 't', ARGV[i + 1], 'e', ARGV[i + 2])
    last = ARGV[i]
    i = i + 3
  end
  if last and math.floor(prev / 64) ~= math.floor(tonumber(last) / 64) then
    local entries = redis.call('XRANGE', e, '-', '+', 'COUNT', 256)
    local keep = nil
    for _, en in ipairs(entries) do
      if tonumber(en[2][2]) >= cutoff then
        keep = en[1]
        break
      end
    end
    if keep then
      if keep ~= entries[1][1] then
        redis.call('XTRIM', e, 'MINID', keep)
      end
    elseif #entries > 0 then
      redis.call('XTRIM', e, 'MINID', id(tonumber(string.sub(entries[#entries][1], 3)) + 1))
    end
  end
  return last, i
end

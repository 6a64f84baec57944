-- Shared functions of the commit and create scripts (prepended to both).
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

-- Events come as records: seq, time in ms, encoded event. Each becomes the stream
-- entry 0-<seq> with fields t (time) and e (the event), so history reads by seq.
-- id returns the stream entry id of an event seq.
local function id(seq)
  return string.format('0-%d', seq)
end

local function append_events(e, i, count)
  local last = nil
  for _ = 1, count do
    redis.call('XADD', e, '0-' .. ARGV[i], 't', ARGV[i + 1], 'e', ARGV[i + 2])
    last = ARGV[i]
    i = i + 3
  end
  return last, i
end

-- trim_events keeps at most max events and drops expired ones (time < cutoff ms) at
-- the old end, looking at no more than 256 of them per call.
local function trim_events(e, last, max, cutoff)
  last = tonumber(last)
  if last >= max then
    redis.call('XTRIM', e, 'MINID', id(last - max + 1))
  end
  local first = redis.call('XRANGE', e, '-', '+', 'COUNT', 1)
  if #first == 0 or tonumber(first[1][2][2]) >= cutoff then
    return
  end
  local entries = redis.call('XRANGE', e, '-', '+', 'COUNT', 256)
  for _, en in ipairs(entries) do
    if tonumber(en[2][2]) >= cutoff then
      redis.call('XTRIM', e, 'MINID', en[1])
      return
    end
  end
  redis.call('XTRIM', e, 'MINID', id(tonumber(string.sub(entries[#entries][1], 3)) + 1))
end

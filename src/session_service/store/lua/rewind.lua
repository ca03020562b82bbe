-- Rewind, for edit-and-regenerate: keep the messages through `to` and remove every
-- later one with its bookkeeping (counters, tokens, tool calls, the summaries that
-- covered removed messages), atomically. A short tail (at most max_inline messages
-- and summaries to remove) is cut here; a longer one answers 'staged' and is done by
-- copying the kept part in slices (copy.lua) and swapping it in (rewind_swap.lua).
-- Ids are never reused: li keeps the highest id ever given. The idempotency records
-- of removed appends go too (forget_appends).
-- Arguments: protocol.RewindArgs.
-- Reply: {'ok', removed, messages etag} | {'staged', rewind generation} | {'err', code}
-- Its shapes, decoded by the store: replies.py Rewound, RewindStaged.
local sid, to, limit = A.sid, A.to, A.max_inline
local now = now_ms()
local sk = k_session(sid)
local cur = redis.call('HMGET', sk, 'st', 'mc', 'li', 'rg', 'to', 'ci', 'sn', 'sw')
if not cur[1] then return {'err', 'session_not_found'} end
local failed = precondition(sid, 'm', A.if_match)
if failed then return failed end
if cur[1] == 'archived' then return {'err', 'session_archived'} end
local kept = redis.call('XRANGE', k_messages(sid), '0-' .. I(to), '0-' .. I(to))
if to > 0 and #kept == 0 then return {'err', 'message_not_found'} end

local tail = redis.call('XRANGE', k_messages(sid), '0-' .. I(to + 1), '+', 'COUNT', limit + 1)
local sums = {}
if cur[8] and tonumber(cur[8]) > to then
  -- Summaries never cover less than the one before: those to remove are the newest.
  for _, e in ipairs(redis.call('XREVRANGE', k_summaries(sid), '+', '-', 'COUNT', limit + 1)) do
    if tonumber(entry_info(e[2]).w) <= to then break end
    sums[#sums + 1] = e
  end
  if #sums > limit then return {'staged', cur[4] or '0'} end
end
if #tail > limit then return {'staged', cur[4] or '0'} end
if #tail == 0 and #sums == 0 then return {'ok', 0, etag(sid, 'm')} end

local highest = last_id(cur[3], cur[2])
local ids, tk = {}, 0
local by_role = {}
for _, e in ipairs(tail) do
  local seq = tonumber(string.match(e[1], '%-(%d+)$'))
  local f = entry_info(e[2])
  local r = string.sub(f.r, 1, 1)
  by_role[r] = by_role[r] or {0, 0}
  by_role[r][1] = by_role[r][1] + 1
  by_role[r][2] = by_role[r][2] + f.kc
  tk = tk + f.kc
  if f.tc then
    for _, call in ipairs(cjson.decode(f.tc)) do
      if type(call) == 'table' and call.id then redis.call('HDEL', k_tools(sid), tostring(call.id)) end
    end
  end
  -- A kept call whose answer goes is unanswered again.
  if f.ti and f.ta and tonumber(f.ta) <= to then redis.call('HSET', k_tools(sid), f.ti, f.ta) end
  ids[#ids + 1] = e[1]
  if seq > highest then highest = seq end
end
if #ids > 0 then
  redis.call('XDEL', k_messages(sid), unpack(ids))
  forget_appends(sid, to)
end
for r, v in pairs(by_role) do
  redis.call('HINCRBY', sk, 'n' .. r, -v[1])
  redis.call('HINCRBY', sk, 'k' .. r, -v[2])
end
redis.call('HINCRBY', sk, 'tk', -tk)

if #sums > 0 then
  local sids = {}
  for _, e in ipairs(sums) do sids[#sids + 1] = e[1] end
  redis.call('XDEL', k_summaries(sid), unpack(sids))
  redis.call('HSET', sk, 'sn', I(tonumber(cur[7] or '0') - #sums))
  local latest = redis.call('XREVRANGE', k_summaries(sid), '+', '-', 'COUNT', 1)
  if latest[1] then
    local f = entry_info(latest[1][2])
    redis.call('HSET', sk, 'sy', string.match(latest[1][1], '%-(%d+)$'), 'sw', f.w, 'sk', I(f.k))
  else
    redis.call('HDEL', sk, 'sy', 'sw', 'sk')
  end
end

local mc = tonumber(cur[2] or '0') - #ids
local ea = now + tonumber(cur[5])
redis.call('HSET', sk, 'mc', I(mc), 'li', I(highest), 'la', I(now), 'ea', I(ea))
if to > 0 then redis.call('HSET', sk, 'lm', entry_info(kept[1][2]).t)
else redis.call('HDEL', sk, 'fm', 'lm') end
redis.call('HINCRBY', sk, 'rg', 1)
redis.call('ZADD', k_status(cur[1]), I(now), sid)
count_messages(sid, mc)
touch_messages(sid)
expire_all(sid, ea, cur[6])
return {'ok', #ids, etag(sid, 'm')}

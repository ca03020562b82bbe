-- Rewind of a long tail, the last step: swap the kept part that copy.lua built
-- under the staging id in for the session's conversation, atomically, if nothing
-- refuses it now (the If-Match is checked here, with the write). The old keys are
-- UNLINKed: freed off the main thread, so even 100,000 messages cost no stall.
-- Arguments: protocol.RewindSwapArgs (counters: the kept part's, as for a fork).
-- Reply: {'ok', removed, messages etag} | {'restart'} | {'err', code}
local sid, stg = A.sid, A.staging
local now = now_ms()
local sk = k_session(sid)
local cur = redis.call('HMGET', sk, 'st', 'mc', 'li', 'rg', 'to', 'ci')
if not cur[1] then drop_staging(stg); return {'err', 'session_not_found'} end
local failed = precondition(sid, 'm', A.if_match)
if failed then drop_staging(stg); return failed end
if cur[1] == 'archived' then drop_staging(stg); return {'err', 'session_archived'} end
if (cur[4] or '0') ~= A.generation then drop_staging(stg); return {'restart'} end

local newest = redis.call('XREVRANGE', k_messages(sid), '+', '-', 'COUNT', 1)
local highest = last_id(cur[3], cur[2])
if newest[1] then highest = math.max(highest, tonumber(string.match(newest[1][1], '%-(%d+)$'))) end
local pairs_ = {{k_messages(stg), k_messages(sid)}, {k_tools(stg), k_tools(sid)},
  {k_summaries(stg), k_summaries(sid)}}
for _, p in ipairs(pairs_) do
  redis.call('UNLINK', p[2])
  if redis.call('EXISTS', p[1]) == 1 then redis.call('RENAME', p[1], p[2]) end
end
redis.call('HDEL', sk, 'fm', 'lm', 'sy', 'sw', 'sk', 'nu', 'na', 'ns', 'nt', 'ku', 'ka', 'ks', 'kt')
redis.call('HSET', sk, unpack(A.counters))
local mc = tonumber(redis.call('HGET', sk, 'mc') or '0')
local ea = now + tonumber(cur[5])
redis.call('HSET', sk, 'li', I(highest), 'la', I(now), 'ea', I(ea))
redis.call('HINCRBY', sk, 'rg', 1)
redis.call('ZADD', k_status(cur[1]), I(now), sid)
count_messages(sid, mc)
touch_messages(sid)
expire_all(sid, ea, cur[6])
return {'ok', tonumber(cur[2] or '0') - mc, etag(sid, 'm')}

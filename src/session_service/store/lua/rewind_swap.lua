-- Rewind of a long tail, the last step: swap the kept part that copy.lua built
-- under the staging id in for the session's conversation, atomically, if nothing
-- refuses it now (the If-Match is checked here, with the write). The old keys are
-- UNLINKed: freed off the main thread, so even 100,000 messages cost no stall.
-- Summaries do not move the rewind generation, so the copy may have missed some
-- written meanwhile: those that cover only kept messages are carried over here (at
-- most CARRY_MAX entries or CARRY_BYTES; more answer 'behind' with the staged
-- summaries' last seq, and the store copies them in slices and swaps again).
-- Arguments: protocol.RewindSwapArgs (counters: the kept part's, as for a fork;
-- the summary fields sn/sy/sw/sk are recomputed here from what is swapped in).
-- Reply: {'ok', removed, messages etag} | {'behind', seq} | {'restart'} | {'err', code}
-- Its shapes, decoded by the store: replies.py Rewound, SwapBehind, Restart.
local sid, stg = A.sid, A.staging
local now = now_ms()
local sk = k_session(sid)
local cur = redis.call('HMGET', sk, 'st', 'mc', 'li', 'rg', 'to', 'ci')
if not cur[1] then drop_staging(stg); return {'err', 'session_not_found'} end
local failed = precondition(sid, 'm', A.if_match)
if failed then drop_staging(stg); return failed end
if cur[1] == 'archived' then drop_staging(stg); return {'err', 'session_archived'} end
if (cur[4] or '0') ~= A.generation then drop_staging(stg); return {'restart'} end
-- The copy was swept away meanwhile (an erase that keeps sid): copy again.
if not staging_whole(stg, A.counters) then drop_staging(stg); return {'restart'} end

-- Summaries never cover less than the one before: those to carry are the live
-- ones after the staged tail, up to the first that covers a removed message.
local CARRY_MAX, CARRY_BYTES = 64, 128 * 1024
local staged = redis.call('XREVRANGE', k_summaries(stg), '+', '-', 'COUNT', 1)
local after = staged[1] and tonumber(string.match(staged[1][1], '%-(%d+)$')) or 0
local carry, bytes = {}, 0
for _, e in ipairs(redis.call('XRANGE', k_summaries(sid), '0-' .. I(after + 1), '+',
    'COUNT', CARRY_MAX + 1)) do
  local f = entry_info(e[2])
  if tonumber(f.w) > A.to then break end
  bytes = bytes + f.bytes
  if #carry == CARRY_MAX or bytes > CARRY_BYTES then return {'behind', after} end
  carry[#carry + 1] = e
end
for _, e in ipairs(carry) do redis.call('XADD', k_summaries(stg), e[1], unpack(e[2])) end

local newest = redis.call('XREVRANGE', k_messages(sid), '+', '-', 'COUNT', 1)
local highest = last_id(cur[3], cur[2])
if newest[1] then highest = math.max(highest, tonumber(string.match(newest[1][1], '%-(%d+)$'))) end
-- The append records are the kept messages' (copy.lua 'i' and 'l'): those of the
-- removed messages, and of appends made during the copy, go with them.
local staged_keys, live_keys = keys_of(stg, STAGING_KEYS), keys_of(sid, STAGING_KEYS)
for i, live in ipairs(live_keys) do
  redis.call('UNLINK', live)
  if redis.call('EXISTS', staged_keys[i]) == 1 then redis.call('RENAME', staged_keys[i], live) end
end
redis.call('DEL', k_copy_owner(stg))
redis.call('HDEL', sk, 'fm', 'lm', 'sy', 'sw', 'sk', 'nu', 'na', 'ns', 'nt', 'ku', 'ka', 'ks', 'kt')
redis.call('HSET', sk, unpack(A.counters))
local latest = redis.call('XREVRANGE', k_summaries(sid), '+', '-', 'COUNT', 1)
redis.call('HSET', sk, 'sn', I(redis.call('XLEN', k_summaries(sid))))
if latest[1] then
  local f = entry_info(latest[1][2])
  redis.call('HSET', sk, 'sy', string.match(latest[1][1], '%-(%d+)$'), 'sw', f.w, 'sk', I(f.k))
else
  redis.call('HDEL', sk, 'sy', 'sw', 'sk')
end
local mc = tonumber(redis.call('HGET', sk, 'mc') or '0')
local ea = now + tonumber(cur[5])
redis.call('HSET', sk, 'li', I(highest), 'la', I(now), 'ea', I(ea))
redis.call('HINCRBY', sk, 'rg', 1)
redis.call('ZADD', k_status(cur[1]), I(now), sid)
count_messages(sid, mc)
touch_messages(sid)
expire_all(sid, ea, cur[6])
return {'ok', tonumber(cur[2] or '0') - mc, etag(sid, 'm')}

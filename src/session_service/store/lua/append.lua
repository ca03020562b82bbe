-- Append one message: O(1) whatever the conversation's length.
-- ARGV: sid, role, content, metadata_json|'', title|'', title_folded|'',
--       idem|'', fingerprint, max_messages, idem_ttl_ms
local sid, role = ARGV[1], ARGV[2]
local now = now_ms()
local sk = k_session(sid)
local cur = redis.call('HMGET', sk, 'st', 'mc', 'lm', 'to', 't', 'nu', 'ci')
local st = cur[1]
if not st then return {'err', 'session_not_found'} end

local idem = ARGV[7]
if idem ~= '' then
  local prev = redis.call('HGET', k_idem(sid), idem)
  if prev then
    local pfp, pn, ptotal, pat = string.match(prev, '^([^|]*)|(%d+)|(%d+)|(%d+)$')
    if pat and now - tonumber(pat) <= tonumber(ARGV[10]) then
      if pfp ~= ARGV[8] then return {'err', 'idempotency_key_reused'} end
      local entry = redis.call('XRANGE', k_messages(sid), '0-' .. pn, '0-' .. pn)
      return {'replay', tonumber(pn), tonumber(ptotal), st, entry}
    end
  end
end

if st == 'archived' then return {'err', 'session_archived'} end
local mc = tonumber(cur[2] or '0')
if mc >= tonumber(ARGV[9]) then return {'err', 'session_full'} end

-- Timestamps never go backwards within a session, even if the clock does.
local ts = math.max(now, tonumber(cur[3] or '0'))
local n = mc + 1
redis.call('XADD', k_messages(sid), '0-' .. n, 'r', role, 'c', ARGV[3], 't', I(ts), 'm', ARGV[4])

local ea = now + tonumber(cur[4])
local fields = {'mc', I(n), 'lm', I(ts), 'la', I(now), 'ea', I(ea)}
if mc == 0 then fields[#fields + 1] = 'fm'; fields[#fields + 1] = I(ts) end
if st == 'active' then
  set_status(sid, 'active', 'in_progress', I(now))
  st = 'in_progress'
  fields[#fields + 1] = 'st'; fields[#fields + 1] = st
end
if role == 'user' and not cur[6] and (not cur[5] or cur[5] == '') and ARGV[5] ~= '' then
  fields[#fields + 1] = 't'; fields[#fields + 1] = ARGV[5]
  if ARGV[6] ~= '' then fields[#fields + 1] = 'tl'; fields[#fields + 1] = ARGV[6] end
end
redis.call('HSET', sk, unpack(fields))
redis.call('HINCRBY', sk, 'n' .. string.sub(role, 1, 1), 1)
count_messages(sid, n)
redis.call('ZADD', k_status(st), I(now), sid)
if idem ~= '' then
  redis.call('HSET', k_idem(sid), idem, ARGV[8] .. '|' .. n .. '|' .. n .. '|' .. I(now))
end
expire_all(sid, ea, cur[7])
return {'ok', n, ts, n, st}

-- Append one message: O(1) whatever the conversation's length.
-- Arguments: protocol.AppendArgs.
-- The per-session structures it keeps (tool calls, token counters) are described
-- in lib.lua; fork and rewind must keep them in step.
local sid, role = A.sid, A.role
local now = now_ms()
local sk = k_session(sid)
local r1 = string.sub(role, 1, 1)
-- Read with the record what the append adds to (messages and tokens by role, all
-- tokens, the ETag versions): one HSET writes it all back.
local cur = redis.call('HMGET', sk, 'st', 'mc', 'lm', 'to', 't', 'nu', 'ci', 'sn', 'li',
  'n' .. r1, 'k' .. r1, 'tk', 'ca', 'mv', 'ev')
local st = cur[1]
if not st then return {'err', 'session_not_found'} end

local idem = A.idem
if idem ~= '' then
  local prev = redis.call('HGET', k_idem(sid), idem)
  if prev then
    local pfp, pn, ptotal, pat = string.match(prev, '^([^|]*)|(%d+)|(%d+)|(%d+)$')
    -- A retry replays even though its own append moved the ETag on.
    if pat and now - tonumber(pat) <= A.idem_ttl_ms and pfp == A.fingerprint then
      local entry = redis.call('XRANGE', k_messages(sid), '0-' .. pn, '0-' .. pn)
      return replay(k_idem(sid), idem, prev, tonumber(pn), tonumber(ptotal), st, entry,
        etag(sid, 'm'))
    end
    if pat and now - tonumber(pat) <= A.idem_ttl_ms then
      return precondition(sid, 'm', A.if_match) or {'err', 'idempotency_key_reused'}
    end
  end
end

local failed = precondition(sid, 'm', A.if_match)
if failed then return failed end

if st == 'archived' then return {'err', 'session_archived'} end
local mc = tonumber(cur[2] or '0')
local max = A.max_messages
-- Summaries count toward the bound like messages.
if mc + tonumber(cur[8] or '0') >= max then
  return {'err', 'session_full'}
end

-- Tool bookkeeping, checked before anything is written.
local tools, tcid, ids = k_tools(sid), A.tool_call_id, A.call_ids
local call_seq
if tcid ~= '' then
  local ref = redis.call('HGET', tools, tcid)
  if not ref then return {'err', 'unknown_tool_call'} end
  if string.find(ref, ':', 1, true) then return {'err', 'tool_call_already_answered'} end
  call_seq = ref
end
if #ids > 0 then
  if redis.call('HLEN', tools) + #ids > max then
    return {'err', 'session_full'}
  end
  for _, id in ipairs(ids) do
    if redis.call('HEXISTS', tools, id) == 1 then
      return {'err', 'duplicate_tool_call', id}
    end
  end
end

local tokens = I(A.tokens)
local estimated = A.estimated and '1' or '0'

-- Timestamps never go backwards within a session, even if the clock does.
local ts = math.max(now, tonumber(cur[3] or '0'))
-- The id continues after the highest ever given (a rewind never lowers it).
local n, count = last_id(cur[9], mc) + 1, mc + 1
local entry = {'r', role, 'c', A.content, 't', I(ts), 'm', A.metadata, 'k', tokens, 'e', estimated}
if A.tool_calls ~= '' then entry[#entry + 1] = 'tc'; entry[#entry + 1] = A.tool_calls end
if call_seq then
  entry[#entry + 1] = 'ti'; entry[#entry + 1] = tcid
  entry[#entry + 1] = 'ta'; entry[#entry + 1] = call_seq
  redis.call('HSET', tools, tcid, call_seq .. ':' .. n)
end
for _, id in ipairs(ids) do redis.call('HSET', tools, id, I(n)) end
redis.call('XADD', k_messages(sid), '0-' .. n, unpack(entry))

local ea = now + tonumber(cur[4])
local fields = {'mc', I(count), 'li', I(n), 'lm', I(ts), 'la', I(now), 'ea', I(ea)}
if mc == 0 then fields[#fields + 1] = 'fm'; fields[#fields + 1] = I(ts) end
if st == 'active' then
  set_status(sid, 'active', 'in_progress', I(now))
  st = 'in_progress'
  fields[#fields + 1] = 'st'; fields[#fields + 1] = st
end
if role == 'user' and not cur[6] and (not cur[5] or cur[5] == '') and A.title ~= '' then
  fields[#fields + 1] = 't'; fields[#fields + 1] = A.title
  if A.title_folded ~= '' then fields[#fields + 1] = 'tl'; fields[#fields + 1] = A.title_folded end
end
local mv = tonumber(cur[14] or '0') + 1  -- touch_messages, folded into the HSET
fields[#fields + 1] = 'n' .. r1; fields[#fields + 1] = I(tonumber(cur[10] or '0') + 1)
fields[#fields + 1] = 'k' .. r1; fields[#fields + 1] = I(tonumber(cur[11] or '0') + A.tokens)
fields[#fields + 1] = 'tk'; fields[#fields + 1] = I(tonumber(cur[12] or '0') + A.tokens)
fields[#fields + 1] = 'mv'; fields[#fields + 1] = I(mv)
fields[#fields + 1] = 'ev'; fields[#fields + 1] = I(tonumber(cur[15] or '0') + 1)
redis.call('HSET', sk, unpack(fields))
count_one_more(sid, count)
redis.call('ZADD', k_status(st), I(now), sid)
if idem ~= '' then
  remember_append(sid, idem, A.fingerprint .. '|' .. n .. '|' .. count .. '|' .. I(now), now,
    A.idem_ttl_ms, n)
end
expire_all(sid, ea, cur[7])
-- etag(sid, 'm') from what was just written (the record always has 'ca').
return {'ok', n, ts, count, st, '"' .. (cur[13] or '0') .. '.m' .. mv .. '"'}

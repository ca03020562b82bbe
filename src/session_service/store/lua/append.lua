-- Append one message: O(1) whatever the conversation's length.
-- Arguments: protocol.AppendArgs.
-- The per-session structures it keeps (tool calls, token counters) are described
-- in lib.lua; fork and rewind must keep them in step. The steps are lib.lua's
-- APPENDING functions, shared with append_batch.lua.
local sid = A.sid
local now = now_ms()
local r1 = string.sub(A.role, 1, 1)
local s = read_for_append(sid, 'n' .. r1, 'k' .. r1)
local st = s.st
if not st then return {'err', 'session_not_found'} end

if A.idem ~= '' then
  local seen, last, total, record = append_seen(sid, A.idem, A.fingerprint, A.idem_ttl_ms, now)
  if seen == 'same' then
    -- A retry replays even though its own append moved the ETag on.
    local entry = redis.call('XRANGE', k_messages(sid), '0-' .. last, '0-' .. last)
    return replay(k_idem(sid), A.idem, record, last, total, st, entry, etag(sid, 'm'))
  end
  if seen then return precondition(sid, 'm', A.if_match) or {'err', 'idempotency_key_reused'} end
end

local failed = precondition(sid, 'm', A.if_match)
if failed then return failed end
if st == 'archived' then return {'err', 'session_archived'} end

-- The id continues after the highest ever given (a rewind never lowers it).
local n = last_id(s.li, s.mc) + 1
local m = {role = A.role, content = A.content, metadata = A.metadata, tokens = A.tokens,
  estimated = A.estimated, tool_calls = A.tool_calls, tool_call_id = A.tool_call_id,
  call_ids = A.call_ids}
local refused = check_message(sid, m, n, tonumber(s.mc or '0') + tonumber(s.sn or '0'),
  A.max_messages, nil)
if refused then return refused end

-- Timestamps never go backwards within a session, even if the clock does.
local ts = math.max(now, tonumber(s.lm or '0'))
store_message(sid, m, n, ts, nil)
local count, status, tag = finish_append(sid, s, 1, n, ts, now, {r1, 1, A.tokens},
  A.tokens, A.title, A.title_folded, A.idem, A.fingerprint, A.idem_ttl_ms)
return {'ok', n, ts, count, status, tag}

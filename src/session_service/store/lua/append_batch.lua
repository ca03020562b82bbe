-- Append a whole agent turn (1-64 messages) in one step: every message is checked
-- before any is stored, a tool result may answer a call made earlier in the same
-- batch, and on any refusal nothing is written. One activity, one move of the
-- messages ETag, one idempotency record for the batch (the append's, naming the
-- batch's last message: its messages have consecutive seqs). Each message follows
-- the single append's rules through lib.lua's APPENDING functions.
-- Arguments: protocol.AppendBatchArgs; A.messages holds STRIDE values per message
-- (role, content, metadata, tokens, estimated, tool_calls, tool_call_id, the number
-- of its call ids) and A.call_ids every message's call ids, in order.
-- Reply: {'ok', first seq, last seq, ts, count, status, messages etag}
--      | {'replay', last seq, count, status, entries, messages etag}
--      | {'err', code, extra or '', index of the message at fault (from 0)?}
-- Its shapes, decoded by the store: replies.py BatchOk, BatchReplay.
local STRIDE = 8
local sid = A.sid
local now = now_ms()

-- added: the counters by role as finish_append takes them (letter, messages, tokens, ...);
-- counters: their fields, for read_for_append; by_role: letter -> position in added.
local batch, counters, by_role, added, tokens, at = {}, {}, {}, {}, 0, 0
for i = 1, #A.messages, STRIDE do
  local ids = {}
  for j = 1, tonumber(A.messages[i + 7]) do ids[j] = A.call_ids[at + j] end
  at = at + #ids
  local m = {role = A.messages[i], content = A.messages[i + 1], metadata = A.messages[i + 2],
    tokens = tonumber(A.messages[i + 3]), estimated = A.messages[i + 4] == '1',
    tool_calls = A.messages[i + 5], tool_call_id = A.messages[i + 6], call_ids = ids}
  batch[#batch + 1] = m
  local r = string.sub(m.role, 1, 1)
  local at_role = by_role[r]
  if not at_role then
    counters[#counters + 1] = 'n' .. r
    counters[#counters + 1] = 'k' .. r
    at_role = #added + 1
    by_role[r] = at_role
    added[at_role], added[at_role + 1], added[at_role + 2] = r, 0, 0
  end
  added[at_role + 1] = added[at_role + 1] + 1
  added[at_role + 2] = added[at_role + 2] + m.tokens
  tokens = tokens + m.tokens
end
if #batch == 0 or #A.messages % STRIDE ~= 0 or at ~= #A.call_ids then
  return redis.error_reply('append_batch: malformed messages')
end

local s = read_for_append(sid, unpack(counters))
local st = s.st
if not st then return {'err', 'session_not_found'} end

if A.idem ~= '' then
  local seen, last, total, record = append_seen(sid, A.idem, A.fingerprint, A.idem_ttl_ms, now)
  if seen == 'same' then
    -- A retry replays even though its own batch moved the ETag on; replay() rewrites the
    -- record first, so a WAIT after it confirms the original batch reached a replica.
    local entries = redis.call('XRANGE', k_messages(sid), '0-' .. I(last - #batch + 1),
      '0-' .. I(last))
    return replay(k_idem(sid), A.idem, record, last, total, st, entries, etag(sid, 'm'))
  end
  if seen then return precondition(sid, 'm', A.if_match) or {'err', 'idempotency_key_reused'} end
end

local failed = precondition(sid, 'm', A.if_match)
if failed then return failed end
if st == 'archived' then return {'err', 'session_archived'} end

-- Every message is checked as if the ones before it were already stored.
local first = last_id(s.li, s.mc) + 1
local count = tonumber(s.mc or '0') + tonumber(s.sn or '0')
local calls = new_calls()
for i, m in ipairs(batch) do
  local refused = check_message(sid, m, first + i - 1, count + i - 1, A.max_messages, calls)
  if refused then return {'err', refused[2], refused[3] or '', i - 1} end
end

-- Timestamps never go backwards within a session, even if the clock does.
local ts = math.max(now, tonumber(s.lm or '0'))
local tools = {}
for i, m in ipairs(batch) do store_message(sid, m, first + i - 1, ts, tools) end
write_tools(sid, tools)
local last = first + #batch - 1
local total, status, tag = finish_append(sid, s, #batch, last, ts, now, added, tokens, A.title,
  A.title_folded, A.idem, A.fingerprint, A.idem_ttl_ms)
return {'ok', first, last, ts, total, status, tag}

-- The prompt window: the newest messages after the latest summary whose tokens,
-- with the summary's, fit the budget; no gap, and an assistant message with
-- tool_calls and its tool results are included together or not at all.
-- It walks backward from the newest message and stops at the first one that does
-- not fit (or at max_messages, or at max_bytes of stored message data), so it
-- reads what it returns plus at most one chunk: its cost does not grow with the
-- conversation. Every entry read costs (Lua copies it) whether it is returned or
-- not, so the first chunk is small and the next ones are sized from the session's
-- mean tokens per message and the bytes per entry seen so far. Read-only.
-- Arguments: protocol.WindowArgs.
-- Reply: {'ok', summary entry list ({} when none), total_tokens, truncated (0|1),
--         entry, entry, ...} with the entries oldest first.
-- Its shapes, decoded by the store: replies.py Window.
local sid, budget = A.sid, A.max_tokens
local cap, largest, max_bytes = A.max_messages, A.largest_chunk, A.max_bytes
local h = redis.call('HMGET', k_session(sid), 'st', 'sy', 'sw', 'sk', 'tk', 'mc')
if not h[1] then return {'err', 'session_not_found'} end
local summary, floor, used = {}, 0, 0
if h[2] then
  summary = redis.call('XRANGE', k_summaries(sid), '0-' .. h[2], '0-' .. h[2])
  floor, used = tonumber(h[3]), tonumber(h[4])
end
if used > budget then return {'ok', summary, used, 1} end

local taken = {}              -- newest first
local best, best_used = 0, used
-- The oldest assistant message that an included tool result needs: a cut newer
-- than it would split that tool-call group.
local need = math.huge
local truncated = 0
local hi, lo = '+', '0-' .. I(floor + 1)
local stop = false
-- Sessions of earlier releases have no token total: assume 256-byte messages.
local mean = 64
if h[5] and tonumber(h[6] or '0') > 0 then mean = tonumber(h[5]) / tonumber(h[6]) end
local bytes, read = 0, 0
local chunk = 4
while not stop do
  local entries = redis.call('XREVRANGE', k_messages(sid), hi, lo, 'COUNT', chunk)
  for _, e in ipairs(entries) do
    local seq = tonumber(string.match(e[1], '%-(%d+)$'))
    local f, k, ta, c = e[2], nil, nil, ''
    local size = 0
    for i = 1, #f, 2 do
      local name = f[i]
      size = size + #f[i + 1]
      if name == 'k' then k = tonumber(f[i + 1])
      elseif name == 'ta' then ta = tonumber(f[i + 1])
      elseif name == 'c' then c = f[i + 1] end
    end
    read = read + 1
    -- Entries of earlier releases carry no count: the documented estimate.
    k = k or math.ceil(#c / 4)
    if #taken >= cap or used + k > budget or bytes + size > max_bytes then
      truncated, stop = 1, true
      break
    end
    used, bytes = used + k, bytes + size
    taken[#taken + 1] = e
    if ta and ta < need then need = ta end
    if need >= seq then best, best_used = #taken, used end
  end
  if #entries < chunk then break end
  hi = '(' .. entries[#entries][1]
  chunk = largest
  if mean >= 1 then chunk = math.ceil((budget - used) / mean) + 2 end
  chunk = math.min(chunk, math.floor((max_bytes - bytes) * read / bytes) + 1)
  chunk = math.max(4, math.min(largest, chunk))
end
if best < #taken then truncated = 1 end

local reply = {'ok', summary, best_used, truncated}
for i = best, 1, -1 do reply[#reply + 1] = taken[i] end
return reply

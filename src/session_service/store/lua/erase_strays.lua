-- After the erase queue is drained: delete the keys a SCAN found under the user's
-- tag that belong to no live session. Arguments: protocol.EraseStraysArgs
-- (key suffixes relative to KEYS[1]).
-- Returns the number of keys deleted.
--
-- With no session left, every key goes. A session created while the erase ran is
-- kept whole: its own keys, the indexes and counters, its client_id and create records.
local function live(sid)
  return sid ~= nil and redis.call('ZSCORE', k_expiry(), sid) ~= false
end
local alive = redis.call('ZCARD', k_expiry()) > 0
local deleted = 0
for _, sfx in ipairs(A.suffixes) do
  local keep = false
  if alive then
    local kind, sid = string.match(sfx, '^(%a+):([^:]+)')
    if kind == 'c' or kind == 'q' then
      -- client_id -> sid, and create records 'fingerprint|code|sid'
      keep = live(string.match(redis.call('GET', base .. sfx) or '', '([^|]+)$'))
    elseif kind == 'z' then
      keep = true
    elseif kind and kind ~= 'r' then
      keep = live(sid)  -- a per-session key (s:, m:, i:, k:, ...) of that session
    else
      keep = kind == nil and sfx ~= K_ERASE  -- the indexes and the user's counters
    end
  end
  if not keep then deleted = deleted + redis.call('UNLINK', base .. sfx) end
end
return deleted

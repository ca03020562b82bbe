-- After the erase queue is drained: delete the keys a SCAN found under the user's
-- tag that belong to no live session. ARGV: key suffixes (relative to KEYS[1]).
-- Returns the number of keys deleted.
--
-- With no session left, every key goes. A session created while the erase ran is
-- kept whole: its own keys, the indexes, its client_id and create records.
local function sid_in(sfx)
  -- Per-session keys, whatever their kind: s:, m:, i:, k:, and those added later.
  local _, _, sid = string.find(sfx, '^%a+:(sess_[0-9a-f]+)')
  return sid
end
local function referenced(value)
  if not value then return nil end
  return string.match(value, '(sess_[0-9a-f]+)$')
end
local alive = redis.call('ZCARD', k_expiry()) > 0
local deleted = 0
for _, sfx in ipairs(ARGV) do
  local keep = false
  if alive then
    local kind = string.sub(sfx, 1, 2)
    local sid = sid_in(sfx)
    if sid then
      keep = redis.call('ZSCORE', k_expiry(), sid) ~= false
    elseif kind == 'c:' or kind == 'q:' then
      local ref = referenced(redis.call('GET', base .. sfx))
      keep = ref ~= nil and redis.call('ZSCORE', k_expiry(), ref) ~= false
    else
      -- The indexes and per-user records serve the sessions that stay.
      keep = kind ~= 'r:' and sfx ~= K_ERASE
    end
  end
  if not keep then deleted = deleted + redis.call('DEL', base .. sfx) end
end
return deleted

-- After the erase queue is drained: delete the keys a SCAN found under the user's
-- tag that belong to no live session. Arguments: protocol.EraseStraysArgs
-- (key suffixes relative to KEYS[1], and the erase's cutoff).
-- Returns the number of keys deleted.
--
-- With no session left, every key goes. A session created while the erase ran is
-- kept whole: its own keys, the indexes and counters, its client_id and create records,
-- and the copies in progress of a fork or a staged rewind of it (keys under a staging
-- id with no session hash, named by k_copy_owner(staging id) -> that session, copy.lua).
-- A copy of a session the erase dropped goes, marker included: what it holds was
-- written before the erase.
local function live(sid)
  return sid ~= nil and redis.call('ZSCORE', k_expiry(), sid) ~= false
end
-- The session a copy belongs to is one this erase spares: live, created after the cutoff.
local function spared(sid)
  if not live(sid) then return false end
  local ca = redis.call('HGET', k_session(sid), 'ca')
  return ca ~= false and tonumber(ca) > A.cutoff
end
local function copy_kept(stg)
  local owner = redis.call('GET', k_copy_owner(stg))
  return owner ~= false and spared(owner)
end
local staged = {}
for _, suffix in ipairs(STAGING_KEYS) do staged[string.match(suffix, '^(%a+)')] = true end
local owner_kind = string.match(K_COPY_OWNER, '^(%a+)')

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
    elseif kind == owner_kind then
      keep = copy_kept(sid)
    elseif kind and kind ~= 'r' then
      -- a per-session key (s:, m:, i:, k:, ...) of that session, or of a copy it owns
      keep = live(sid) or (staged[kind] == true and copy_kept(sid))
    else
      keep = kind == nil and sfx ~= K_ERASE  -- the indexes and the user's counters
    end
  end
  if not keep then deleted = deleted + redis.call('UNLINK', base .. sfx) end
end
return deleted

-- One bounded slice of a user's erasure. Arguments: protocol.EraseArgs.
-- Returns {cutoff, cursor, dropped, live_dropped, keys_dropped, done}
-- Its shapes, decoded by the store: replies.py EraseSlice.
--
-- The erase drops every session created at or before its cutoff (the first
-- slice's now), whole, and nothing else; nothing is hidden or moved meanwhile, so
-- every read, write, limit and delete-all sees the same sessions during the erase
-- and after an interrupted one. In order:
--   1. a queue left by an erase of an earlier release (K_ERASE: sessions it hid
--      from the expiry index), all older than the cutoff;
--   2. the expiry index, by ZSCAN from A.cursor: ZSCAN returns every entry present
--      from the first call to the last, so every session that existed when the
--      erase began is met; one created later (a later `ca`) is left whole;
--   3. forks published during the erase from a session it drops (fork.lua puts
--      them in K_ERASE_LATE while this erase is listed in K_ERASING): their
--      content was written before the erase, so they go too.
-- The erase is listed in K_ERASING (run -> cutoff) from its first slice until its
-- last; a stopped erase's entry expires after A.mark_ttl_ms.
local now = now_ms()
local cutoff = A.cutoff or now
local erasing, late = base .. K_ERASING, base .. K_ERASE_LATE
redis.call('ZADD', erasing, I(cutoff), A.run)
redis.call('PEXPIRE', erasing, A.mark_ttl_ms)
if redis.call('EXISTS', late) == 1 then redis.call('PEXPIRE', late, A.mark_ttl_ms) end

local dropped, live, keys = 0, 0, 0
local function drop(sid, ea)
  if ea == 'inf' or (ea and tonumber(ea) >= now) then live = live + 1 end
  keys = keys + redis.call('EXISTS', unpack(keys_of(sid, SESSION_KEYS)))
  drop_session(sid)
  dropped = dropped + 1
end
local function reply(cursor, done)
  return {I(cutoff), cursor, dropped, live, keys, done}
end

local legacy = base .. K_ERASE
if redis.call('EXISTS', legacy) == 1 then
  local rows = redis.call('ZRANGE', legacy, 0, A.slice - 1, 'WITHSCORES')
  for i = 1, #rows, 2 do
    drop(rows[i], rows[i + 1])
    redis.call('ZREM', legacy, rows[i])
  end
  return reply(A.cursor, 0)
end

if A.cursor ~= 'late' then
  local scan = redis.call('ZSCAN', k_expiry(), A.cursor, 'COUNT', A.slice)
  local rows = scan[2]
  for i = 1, #rows, 2 do
    local ca = redis.call('HGET', k_session(rows[i]), 'ca')
    if not ca or tonumber(ca) <= cutoff then drop(rows[i], rows[i + 1]) end
  end
  if scan[1] ~= '0' then return reply(scan[1], 0) end
end

for _, sid in ipairs(redis.call('SPOP', late, A.slice)) do
  drop(sid, redis.call('ZSCORE', k_expiry(), sid))
end
if redis.call('SCARD', late) > 0 then return reply('late', 0) end
redis.call('ZREM', erasing, A.run)
return reply('late', 1)

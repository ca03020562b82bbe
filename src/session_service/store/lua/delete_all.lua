-- One slice of deleting every session that exists when delete-all starts: the
-- first slice fixes the cutoff (now); each slice visits up to about A.slice
-- entries of the expiry index with ZSCAN from A.cursor and drops those created at
-- or before the cutoff (and any whose record has expired), archived included.
-- ZSCAN returns every entry present from the first call to the last whatever
-- happens to the others, so every session that existed when delete-all began is
-- dropped; one created meanwhile may be left. The caller loops until cursor '0'.
-- A queue an erase of an earlier release left (K_ERASE) holds sessions it hid
-- from the index: they go first.
-- Returns {live sessions deleted, expired ones pruned, cursor, cutoff, done}.
-- Its shapes, decoded by the store: replies.py DeleteAllSlice.
local now = now_ms()
local cutoff = A.cutoff or now
local live, expired = 0, 0
local function drop(sid, ea)
  drop_session(sid)
  if ea == 'inf' or (ea and tonumber(ea) >= now) then live = live + 1 else expired = expired + 1 end
end
local legacy = base .. K_ERASE
if redis.call('EXISTS', legacy) == 1 then
  local rows = redis.call('ZRANGE', legacy, 0, A.slice - 1, 'WITHSCORES')
  for j = 1, #rows, 2 do
    drop(rows[j], rows[j + 1])
    redis.call('ZREM', legacy, rows[j])
  end
  return {live, expired, A.cursor, I(cutoff), 0}
end
local scan = redis.call('ZSCAN', k_expiry(), A.cursor, 'COUNT', A.slice)
local rows = scan[2]
for j = 1, #rows, 2 do
  local ca = redis.call('HGET', k_session(rows[j]), 'ca')
  if not ca or tonumber(ca) <= cutoff then drop(rows[j], rows[j + 1]) end
end
return {live, expired, scan[1], I(cutoff), scan[1] == '0' and 1 or 0}

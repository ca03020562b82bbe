-- One bounded slice of a user's erasure. Arguments: protocol.EraseArgs.
-- Returns {started, dropped, live_dropped, keys_dropped, left}
--
-- Starting moves the expiry index aside (RENAME, O(1)) as the erase queue: every
-- session that exists when the erase starts is in it; a session created later goes
-- into a fresh index and is left whole. A session in the queue is dropped whole, in
-- one step, whatever writes race it (a write re-adding it to the index is undone by
-- drop_session). A queue left by an interrupted erase is drained before a new start.
local size = A.slice
local queue = base .. K_ERASE
local started = 0
if A.start and redis.call('EXISTS', queue) == 0 then
  if redis.call('EXISTS', k_expiry()) == 1 then redis.call('RENAME', k_expiry(), queue) end
  started = 1
end
local now = now_ms()
local rows = redis.call('ZRANGE', queue, 0, size - 1, 'WITHSCORES')
local dropped, live, keys = 0, 0, 0
for i = 1, #rows, 2 do
  local sid = rows[i]
  local ea = rows[i + 1]
  if ea == 'inf' or tonumber(ea) >= now then live = live + 1 end
  keys = keys + redis.call('EXISTS', unpack(keys_of(sid, SESSION_KEYS)))
  drop_session(sid)
  redis.call('ZREM', queue, sid)
  dropped = dropped + 1
end
return {started, dropped, live, keys, redis.call('ZCARD', queue)}

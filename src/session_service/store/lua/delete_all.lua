-- One slice of deleting every session: drop up to A.slice of the user's sessions,
-- archived included, earliest deadline first; the caller loops. Each slice is
-- bounded, so deleting 50,000 sessions never blocks Redis for long.
-- Returns {live sessions deleted, expired ones pruned, sessions left}.
local now = now_ms()
local rows = redis.call('ZRANGE', k_expiry(), 0, A.slice - 1, 'WITHSCORES')
local live, expired = 0, 0
for j = 1, #rows, 2 do
  drop_session(rows[j])
  local ea = rows[j + 1]
  if ea == 'inf' or tonumber(ea) >= now then live = live + 1 else expired = expired + 1 end
end
return {live, expired, redis.call('ZCARD', k_expiry())}

-- The caller's counters for GET /sessions/statistics: a handful of O(log N)
-- reads whatever the number of sessions, never a scan. Expired sessions are
-- pruned first (the caller repeats while some remain), so counts are exact.
-- Returns {pruned, expired_remaining, messages, status, count, oldest, newest, ...}
-- Its shapes, decoded by the store: replies.py Statistics.
local now = now_ms()
local pruned = prune(now)
local remaining = redis.call('ZCOUNT', k_expiry(), '-inf', '(' .. I(now))
local out = {pruned, remaining, redis.call('HGET', k_counters(), 'messages') or '0'}
for _, st in ipairs(STATUSES) do
  local oldest = redis.call('ZRANGE', k_status(st), 0, 0, 'WITHSCORES')
  local newest = redis.call('ZRANGE', k_status(st), -1, -1, 'WITHSCORES')
  out[#out + 1] = st
  out[#out + 1] = redis.call('ZCARD', k_status(st))
  out[#out + 1] = oldest[2] or ''
  out[#out + 1] = newest[2] or ''
end
return out

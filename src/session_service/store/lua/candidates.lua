-- Search, step 1: every live session id in the given statuses, with its activity score.
-- ARGV: status, ...
local now = now_ms()
prune(now)
local out = {}
for i = 1, #ARGV do
  local r = redis.call('ZRANGE', k_status(ARGV[i]), 0, -1, 'WITHSCORES')
  for j = 1, #r do out[#out + 1] = r[j] end
end
return out

-- Delete every session of the user and its index entries. Returns the number
-- of live sessions deleted; other per-user keys are removed by the caller's SCAN.
local now = now_ms()
local live = redis.call('ZCOUNT', k_expiry(), I(now), '+inf')
for _, sid in ipairs(redis.call('ZRANGE', k_expiry(), 0, -1)) do drop_session(sid) end
for _, st in ipairs(STATUSES) do redis.call('DEL', k_status(st)) end
redis.call('DEL', k_expiry(), k_counts(), k_counters())
return live

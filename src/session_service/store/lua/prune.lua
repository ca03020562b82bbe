-- Remove the index entries (and leftover keys) of expired sessions.
-- Returns {removed, scanned}.
local now = now_ms()
local scanned = redis.call('ZCARD', k_expiry())
return {prune(now), scanned}

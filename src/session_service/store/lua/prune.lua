-- Remove the index entries (and leftover keys) of up to PRUNE_BATCH expired sessions.
-- Returns {removed, scanned, 1 if more expired sessions remain else 0}.
-- Its shapes, decoded by the store: replies.py Pruned.
local now = now_ms()
local scanned = redis.call('ZCARD', k_expiry())
local removed = prune(now)
return {removed, scanned, expired_pending(now) and 1 or 0}

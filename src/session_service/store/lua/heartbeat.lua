-- Slide the inactivity deadline. An archived session is left as it is.
-- Arguments: protocol.HeartbeatArgs.
local sid = A.sid
local now = now_ms()
local sk = k_session(sid)
local cur = redis.call('HMGET', sk, 'st', 'to', 'ci', 'la', 'ea')
local st = cur[1]
if not st then return {'err', 'session_not_found'} end
if st == 'archived' then return {'ok', st, tonumber(cur[4]), tonumber(cur[5]), etag(sid, 's')} end
local ea = now + tonumber(cur[2])
redis.call('HSET', sk, 'la', I(now), 'ea', I(ea))
redis.call('ZADD', k_status(st), I(now), sid)
expire_all(sid, ea, cur[3])
touch_session(sid)
return {'ok', st, now, ea, etag(sid, 's')}

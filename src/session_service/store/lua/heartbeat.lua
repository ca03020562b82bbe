-- Slide the inactivity deadline. An archived session is left as it is.
-- Arguments: protocol.HeartbeatArgs.
local sid = A.sid
local now = now_ms()
local sk = k_session(sid)
local cur = redis.call('HMGET', sk, 'st', 'to', 'ci', 'la', 'ea', 'ca', 'ev')
local st = cur[1]
if not st then return {'err', 'session_not_found'} end
if st == 'archived' then return {'ok', st, tonumber(cur[4]), tonumber(cur[5]), etag(sid, 's')} end
local ea = now + tonumber(cur[2])
local ev = tonumber(cur[7] or '0') + 1  -- touch_session, folded into the HSET
redis.call('HSET', sk, 'la', I(now), 'ea', I(ea), 'ev', I(ev))
notify(sid)
redis.call('ZADD', k_status(st), I(now), sid)
expire_all(sid, ea, cur[3])
return {'ok', st, now, ea, '"' .. (cur[6] or '0') .. '.s' .. ev .. '"'}

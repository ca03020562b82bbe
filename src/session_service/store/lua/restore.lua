-- Restore an archived session to the status it had, with a fresh inactivity window.
-- Arguments: protocol.RestoreArgs.
local sid = A.sid
local now = now_ms()
local sk = k_session(sid)
local cur = redis.call('HMGET', sk, 'st', 'la', 'ci', 'ps', 'to')
local st = cur[1]
if not st then return {'err', 'session_not_found'} end
local failed = precondition(sid, 's', A.if_match)
if failed then return failed end
if st ~= 'archived' then return {'err', 'not_archived', st} end
local prev = cur[4] or 'active'
local ea = now + tonumber(cur[5])
redis.call('HSET', sk, 'st', prev, 'ea', I(ea))
redis.call('HDEL', sk, 'ps', 'ar')
set_status(sid, 'archived', prev, cur[2])
expire_all(sid, ea, cur[3])
touch_session(sid)
return {'ok', redis.call('HGETALL', sk)}

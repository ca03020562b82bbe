-- Delete a session and everything it owns. ARGV: sid
local sid = ARGV[1]
if redis.call('EXISTS', k_session(sid)) == 0 then return {'err', 'session_not_found'} end
drop_session(sid)
return {'ok'}

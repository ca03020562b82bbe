-- Delete a session and everything it owns. ARGV: sid, if_match (session ETag)
local sid = ARGV[1]
if redis.call('EXISTS', k_session(sid)) == 0 then return {'err', 'session_not_found'} end
local failed = precondition(sid, 's', ARGV[2])
if failed then return failed end
drop_session(sid)
return {'ok'}

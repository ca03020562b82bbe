-- Delete a session and everything it owns. Arguments: protocol.DeleteArgs.
local sid = A.sid
if redis.call('EXISTS', k_session(sid)) == 0 then return {'err', 'session_not_found'} end
local failed = precondition(sid, 's', A.if_match)
if failed then return failed end
drop_session(sid)
return {'ok'}

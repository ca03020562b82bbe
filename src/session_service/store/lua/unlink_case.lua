-- Unlink a case (idempotent). Arguments: protocol.UnlinkCaseArgs.
local sid = A.sid
if redis.call('EXISTS', k_session(sid)) == 0 then return {'err', 'session_not_found'} end
local removed = redis.call('ZREM', k_cases(sid), A.case_id)
if removed == 1 then notify(sid, 'k') end
return {'ok', removed}

-- Unlink a case (idempotent). Arguments: protocol.UnlinkCaseArgs.
local sid = A.sid
if redis.call('EXISTS', k_session(sid)) == 0 then return {'err', 'session_not_found'} end
return {'ok', redis.call('ZREM', k_cases(sid), A.case_id)}

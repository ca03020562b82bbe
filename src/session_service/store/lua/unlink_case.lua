-- Unlink a case (idempotent). ARGV: sid, case_id
local sid = ARGV[1]
if redis.call('EXISTS', k_session(sid)) == 0 then return {'err', 'session_not_found'} end
return {'ok', redis.call('ZREM', k_cases(sid), ARGV[2])}

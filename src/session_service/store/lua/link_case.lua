-- Link a case (idempotent). Arguments: protocol.LinkCaseArgs.
local sid = A.sid
local now = now_ms()
local cur = redis.call('HMGET', k_session(sid), 'st', 'ea')
if not cur[1] then return {'err', 'session_not_found'} end
redis.call('ZADD', k_cases(sid), 'NX', I(now), A.case_id)
local ea = tonumber(cur[2])
if ea > 0 then redis.call('PEXPIREAT', k_cases(sid), I(ea)) end
return {'ok', tonumber(redis.call('ZSCORE', k_cases(sid), A.case_id))}

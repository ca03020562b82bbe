-- Link a case (idempotent), at most A.max_cases per session.
-- Arguments: protocol.LinkCaseArgs.
local sid = A.sid
local now = now_ms()
local cur = redis.call('HMGET', k_session(sid), 'st', 'ea')
if not cur[1] then return {'err', 'session_not_found'} end
local ck = k_cases(sid)
if not redis.call('ZSCORE', ck, A.case_id) and redis.call('ZCARD', ck) >= A.max_cases then
  return {'err', 'too_many_cases'}
end
if redis.call('ZADD', ck, 'NX', I(now), A.case_id) == 1 then notify(sid, 'k') end
local ea = tonumber(cur[2])
if ea > 0 then redis.call('PEXPIREAT', ck, I(ea)) end
return {'ok', tonumber(redis.call('ZSCORE', ck, A.case_id))}

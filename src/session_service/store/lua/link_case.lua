-- Link a case (idempotent). ARGV: sid, case_id
local sid = ARGV[1]
local now = now_ms()
local cur = redis.call('HMGET', k_session(sid), 'st', 'ea')
if not cur[1] then return {'err', 'session_not_found'} end
redis.call('ZADD', k_cases(sid), 'NX', I(now), ARGV[2])
local ea = tonumber(cur[2])
if ea > 0 then redis.call('PEXPIREAT', k_cases(sid), I(ea)) end
return {'ok', tonumber(redis.call('ZSCORE', k_cases(sid), ARGV[2]))}

-- Clear the working context; messages and metadata stay. Arguments: protocol.ClearContextArgs.
local sid = A.sid
local now = now_ms()
local sk = k_session(sid)
local st = redis.call('HGET', sk, 'st')
if not st then return {'err', 'session_not_found'} end
local failed = precondition(sid, 's', A.if_match)
if failed then return failed end
if st == 'archived' then return {'err', 'session_archived'} end
local cleared = {}
for _, f in ipairs(redis.call('HKEYS', sk)) do
  if string.sub(f, 1, 2) == 'x:' then
    redis.call('HDEL', sk, f)
    cleared[#cleared + 1] = string.sub(f, 3)
  end
end
if #cleared > 0 then
  redis.call('HSET', sk, 'ua', I(now))
  touch_session(sid)
end
return {'ok', cleared, etag(sid, 's')}

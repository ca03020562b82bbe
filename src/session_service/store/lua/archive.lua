-- Archive (idempotent). Timestamps stay; the deadline becomes ARCHIVED_SESSION_TTL.
-- Arguments: protocol.ArchiveArgs.
local sid = A.sid
local now = now_ms()
local sk = k_session(sid)
local cur = redis.call('HMGET', sk, 'st', 'la', 'ci')
local st = cur[1]
if not st then return {'err', 'session_not_found'} end
local failed = precondition(sid, 's', A.if_match)
if failed then return failed end
if st ~= 'archived' then
  local ttl = A.archived_ttl_ms
  local ea = ttl > 0 and now + ttl or 0
  redis.call('HSET', sk, 'ps', st, 'ar', I(now), 'st', 'archived', 'ea', I(ea))
  set_status(sid, st, 'archived', cur[2])
  expire_all(sid, ea, cur[3])
  touch_session(sid)
end
return {'ok', redis.call('HGETALL', sk)}

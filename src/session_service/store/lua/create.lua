-- Create a session, or resume the caller's live session with the same client_id.
-- ARGV: sid, timeout_ms, client_id|'', idem|'', fingerprint, idem_ttl_ms,
--       max_sessions, field, value, ...
local sid, timeout, ci, idem, fp = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local now = now_ms()
local idem_key = base .. K_CREATE_IDEM .. idem

if idem ~= '' then
  local rec = redis.call('GET', idem_key)
  if rec then
    local rfp, code, rsid = string.match(rec, '^([^|]*)|(%d+)|(.*)$')
    if rsid and redis.call('EXISTS', k_session(rsid)) == 1 then
      if rfp ~= fp then return {'err', 'idempotency_key_reused'} end
      return {'replay', tonumber(code), rsid, redis.call('HGETALL', k_session(rsid))}
    end
  end
end

local function remember(code, rsid)
  if idem ~= '' then
    redis.call('SET', idem_key, fp .. '|' .. code .. '|' .. rsid, 'PX', ARGV[6])
  end
end

local pruned = prune(now)

if ci ~= '' then
  local existing = redis.call('GET', k_client(ci))
  if existing then
    local sk = k_session(existing)
    local cur = redis.call('HMGET', sk, 'st', 'to')
    if cur[1] == 'active' or cur[1] == 'in_progress' then
      local ea = now + tonumber(cur[2])
      redis.call('HSET', sk, 'la', I(now), 'ea', I(ea))
      redis.call('ZADD', k_status(cur[1]), I(now), existing)
      expire_all(existing, ea, ci)
      remember(200, existing)
      return {'resumed', existing, redis.call('HGETALL', sk), pruned}
    end
  end
end

if redis.call('ZCOUNT', k_expiry(), I(now), '+inf') >= tonumber(ARGV[7]) then
  return {'err', 'session_limit_reached'}
end

local sk = k_session(sid)
local ea = now + timeout
redis.call('HSET', sk, 'v', '1', 'st', 'active', 'ca', I(now), 'ua', I(now), 'la', I(now),
  'ea', I(ea), 'to', I(timeout), 'mc', '0')
if #ARGV >= 8 then redis.call('HSET', sk, unpack(ARGV, 8)) end
if ci ~= '' then
  redis.call('HSET', sk, 'ci', ci)
  redis.call('SET', k_client(ci), sid)
end
redis.call('ZADD', k_status('active'), I(now), sid)
expire_all(sid, ea, ci)
remember(201, sid)
return {'created', sid, redis.call('HGETALL', sk), pruned}

-- Create a session, or resume the caller's live session with the same client_id.
-- Arguments: protocol.CreateArgs. The idempotency record keeps the outcome
-- ('created' or 'resumed') with the fingerprint of the request it answered.
-- At the limit with evict_oldest, the evictions and the create are one atomic step,
-- so concurrent creates never evict more than they need. When more than
-- EVICT_BATCH must go (the limit was lowered) or expired sessions are still
-- indexed, it answers 'again' after a bounded step and the caller repeats.
local sid, timeout, ci, idem, fp = A.sid, A.timeout_ms, A.client_id, A.idem, A.fingerprint
local now = now_ms()
local idem_key = base .. K_CREATE_IDEM .. idem

if idem ~= '' then
  local rec = redis.call('GET', idem_key)
  if rec then
    local rfp, outcome, rsid = string.match(rec, '^([^|]*)|([^|]*)|(.*)$')
    if rsid and redis.call('EXISTS', k_session(rsid)) == 1 then
      if rfp ~= fp then return {'err', 'idempotency_key_reused'} end
      return replay(idem_key, nil, rec, outcome, rsid, redis.call('HGETALL', k_session(rsid)))
    end
  end
end

local function remember(outcome, rsid)
  if idem ~= '' then
    redis.call('SET', idem_key, fp .. '|' .. outcome .. '|' .. rsid, 'PX', I(A.idem_ttl_ms))
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
      touch_session(existing)
      remember('resumed', existing)
      return {'resumed', existing, redis.call('HGETALL', sk), pruned}
    end
  end
end

local EVICT_BATCH = 100
local evicted = {}
local over = redis.call('ZCOUNT', k_expiry(), I(now), '+inf') - A.max_sessions + 1
if over > 0 then
  if not A.evict_oldest then return {'err', 'session_limit_reached'} end
  if redis.call('ZCOUNT', k_expiry(), '-inf', '(' .. I(now)) > 0 then
    return {'again', pruned, evicted}
  end
  evicted = evict_oldest(over, EVICT_BATCH)
  if not evicted then return {'err', 'session_limit_reached'} end
  if #evicted < over then return {'again', pruned, evicted} end
end

local sk = k_session(sid)
local ea = now + timeout
redis.call('HSET', sk, 'v', '1', 'st', 'active', 'ca', I(now), 'ua', I(now), 'la', I(now),
  'ea', I(ea), 'to', I(timeout), 'mc', '0')
if #A.fields > 0 then redis.call('HSET', sk, unpack(A.fields)) end
if ci ~= '' then
  redis.call('HSET', sk, 'ci', ci)
  redis.call('SET', k_client(ci), sid)
end
redis.call('ZADD', k_status('active'), I(now), sid)
expire_all(sid, ea, ci)
remember('created', sid)
return {'created', sid, redis.call('HGETALL', sk), pruned, evicted}

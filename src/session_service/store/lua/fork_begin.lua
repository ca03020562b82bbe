-- Fork, step 1 of 3 (then copy.lua slices, then fork.lua): what can be refused
-- before anything is copied. Writes nothing but a replay's confirmation (lib.lua).
-- Arguments: protocol.ForkBeginArgs.
-- Reply: {'replay', sid, fields} | {'ok', through seq, rewind generation} | {'err', code}
-- Its shapes, decoded by the store: replies.py ForkReplay, ForkBegun.
local src, idem, fp = A.src, A.idem, A.fingerprint
local reused = false
if idem ~= '' then
  local idem_key = base .. K_CREATE_IDEM .. idem
  local rec = redis.call('GET', idem_key)
  if rec then
    local rfp, _, rsid = string.match(rec, '^([^|]*)|([^|]*)|(.*)$')
    if rsid and redis.call('EXISTS', k_session(rsid)) == 1 then
      if rfp == fp then
        return replay(idem_key, nil, rec, rsid, redis.call('HGETALL', k_session(rsid)))
      end
      reused = true
    end
  end
end
local cur = redis.call('HMGET', k_session(src), 'st', 'rg')
if not cur[1] then return {'err', 'session_not_found'} end
if reused then return {'err', 'idempotency_key_reused'} end
local through
if not A.through then
  local newest = redis.call('XREVRANGE', k_messages(src), '+', '-', 'COUNT', 1)
  through = newest[1] and tonumber(string.match(newest[1][1], '%-(%d+)$')) or 0
else
  through = A.through
  if through > 0 and #redis.call('XRANGE', k_messages(src), '0-' .. I(through), '0-' .. I(through)) == 0 then
    return {'err', 'message_not_found'}
  end
end
if redis.call('ZCOUNT', k_expiry(), I(now_ms()), '+inf') >= A.max_sessions then
  return {'err', 'session_limit_reached'}
end
return {'ok', through, cur[2] or '0'}

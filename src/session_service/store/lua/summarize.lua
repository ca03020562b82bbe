-- Add a summary that stands in for every message up to covers_through. Nothing
-- is deleted: the summary is a new entry of the session's summaries stream, and
-- the session hash points at the latest one (sy/sw/sk) so the window finds it in
-- O(1). Summaries count toward max_messages with the messages.
-- Arguments: protocol.SummarizeArgs. if_match is the messages ETag: a summary
-- changes the conversation the window is built from, so it moves that ETag and may
-- be conditional on it; a retry replays even though it moved it.
-- An idempotency record is a string 'fingerprint|summary seq|sid' next to the
-- create records (same family, so erasure knows whose it is), expiring on its own.
local sid = A.sid
local now = now_ms()
local sk = k_session(sid)
local cur = redis.call('HMGET', sk, 'st', 'mc', 'sw', 'sn', 'sq', 'to', 'ci')
local st = cur[1]
if not st then return {'err', 'session_not_found'} end
local idem_key = A.idem ~= '' and base .. K_CREATE_IDEM .. A.idem
if idem_key then
  local rec = redis.call('GET', idem_key)
  if rec then
    local fp, rseq = string.match(rec, '^([^|]*)|(%d+)|')
    if fp ~= A.fingerprint then
      return precondition(sid, 'm', A.if_match) or {'err', 'idempotency_key_reused'}
    end
    return replay(idem_key, nil, rec,
      redis.call('XRANGE', k_summaries(sid), '0-' .. rseq, '0-' .. rseq), etag(sid, 'm'))
  end
end
local failed = precondition(sid, 'm', A.if_match)
if failed then return failed end
if st == 'archived' then return {'err', 'session_archived'} end
local w = I(A.covers_through)
if #redis.call('XRANGE', k_messages(sid), '0-' .. w, '0-' .. w) == 0 then
  return {'err', 'unknown_message'}
end
if cur[3] and tonumber(w) < tonumber(cur[3]) then return {'err', 'summary_out_of_order'} end
local sn = tonumber(cur[4] or '0')
if tonumber(cur[2] or '0') + sn >= A.max_messages then return {'err', 'session_full'} end

local seq = tonumber(cur[5] or '0') + 1
redis.call('XADD', k_summaries(sid), '0-' .. I(seq), 'c', A.content, 'w', w, 'k', I(A.tokens),
  'e', A.estimated and '1' or '0', 't', I(now), 'm', A.metadata)
local ea = now + tonumber(cur[6])
redis.call('HSET', sk, 'sy', I(seq), 'sw', w, 'sk', I(A.tokens), 'sn', I(sn + 1), 'sq', I(seq),
  'la', I(now), 'ea', I(ea))
redis.call('ZADD', k_status(st), I(now), sid)
if idem_key then
  redis.call('SET', idem_key, A.fingerprint .. '|' .. I(seq) .. '|' .. sid, 'PX', I(A.idem_ttl_ms))
end
touch_messages(sid)
expire_all(sid, ea, cur[7])
return {'ok', seq, now, etag(sid, 'm')}

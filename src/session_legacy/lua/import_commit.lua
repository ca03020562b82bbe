-- Make an imported session visible in one step (import-legacy): its staged
-- messages, its record, every index, its client_id and the mark that keeps a
-- second run (or a run after the user deleted it) from importing it again.
-- Arguments: codecs.ImportCommitArgs (remaining_ttl_ms -1: kept forever).
local sid, st, la, ttl, ci = A.sid, A.status, A.last_activity_ms, A.remaining_ttl_ms, A.client_id
local mc, max_sessions = A.message_count, A.max_sessions
local now = now_ms()
local mark = base .. K_IMPORTED .. sid
local jk = base .. K_IMPORT .. sid
local sk = k_session(sid)
if redis.call('EXISTS', mark) == 1 then return {'skip', 'already imported', 0} end
if redis.call('EXISTS', sk) == 1 then return {'skip', 'a session with this id exists', 0} end
local pruned = prune(now)
if redis.call('ZCOUNT', k_expiry(), I(now), '+inf') >= max_sessions then
  redis.call('UNLINK', jk)  -- freed in the background, however many were staged
  return {'skip', 'the user is at MAX_SESSIONS_PER_USER', pruned}
end
if mc > 0 then
  local tail = redis.call('XREVRANGE', jk, '+', '-', 'COUNT', 1)
  if #tail == 0 or tail[1][1] ~= '0-' .. I(mc) or redis.call('XLEN', jk) ~= mc then
    return {'err', 'import_incomplete'}
  end
  redis.call('RENAME', jk, k_messages(sid))
end
local ea = 0
if ttl >= 0 then ea = now + ttl end
redis.call('HSET', sk, 'ea', I(ea), unpack(A.fields))
redis.call('ZADD', k_status(st), I(la), sid)
count_messages(sid, mc)
if ci ~= '' then
  -- The most recently active session with a client_id is the one a create resumes,
  -- whichever order the import met them in.
  local owner = redis.call('GET', k_client(ci))
  if owner and owner ~= sid then
    local ola = tonumber(redis.call('HGET', k_session(owner), 'la') or '-1')
    if ola < la or (ola == la and owner < sid) then redis.call('DEL', k_client(ci)) end
  end
end
expire_all(sid, ea, ci)
redis.call('SET', mark, I(now))
if ea > 0 then redis.call('PEXPIREAT', mark, I(ea)) end
return {'imported', sid, pruned}

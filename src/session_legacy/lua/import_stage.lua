-- Stage one chunk of an imported session's messages (import-legacy). The session
-- appears only when import_commit renames the staged stream into place, so an
-- interrupted import leaves nothing visible; the staging key expires on its own.
-- Arguments: codecs.ImportStageArgs: messages is role, content, ts_ms, metadata|'',
-- tokens per message (the original had no token counts: they are estimates, e = '1')
local sid, first, ttl = A.sid, A.first_seq, A.staging_ttl_ms
local msgs = A.messages
local jk = base .. K_IMPORT .. sid
if redis.call('EXISTS', base .. K_IMPORTED .. sid) == 1
  or redis.call('EXISTS', k_session(sid)) == 1 then
  return {'exists'}
end
local n = #msgs / 5
local last = 0
if first == 1 then
  redis.call('UNLINK', jk)  -- a fresh start: what an earlier run staged may be stale
else
  local tail = redis.call('XREVRANGE', jk, '+', '-', 'COUNT', 1)
  if #tail > 0 then last = tonumber(string.match(tail[1][1], '^0%-(%d+)$')) end
  if last == first + n - 1 then return {'ok', last} end  -- this chunk is already staged
  if last ~= first - 1 then return {'err', 'import_gap', I(last)} end
end
for i = 0, n - 1 do
  local at = 1 + i * 5
  redis.call('XADD', jk, '0-' .. I(first + i), 'r', msgs[at], 'c', msgs[at + 1],
    't', msgs[at + 2], 'm', msgs[at + 3], 'k', msgs[at + 4], 'e', '1')
end
redis.call('PEXPIRE', jk, I(ttl))
return {'ok', first + n - 1}

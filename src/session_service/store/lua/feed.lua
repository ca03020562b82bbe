-- What a watcher of the change feed reads after every wake, in one atomic step: the
-- session hash, the highest stored message id at or below the watcher's cursor (below
-- it when a rewind removed the cursor's message), and up to limit + 1 messages after
-- the cursor. Atomic, so a rewind can never fall between the check and the page.
-- Arguments: protocol.FeedArgs.
-- Reply (replies.py FeedRead, Gone): {hash fields, kept seq, entries} | {'gone'}
local sid, after, limit = A.sid, A.after, A.limit
local fields = redis.call('HGETALL', k_session(sid))
if #fields == 0 then return {'gone'} end
local kept = 0
if after > 0 then
  local e = redis.call('XREVRANGE', k_messages(sid), '0-' .. I(after), '-', 'COUNT', 1)
  if e[1] then kept = tonumber(string.match(e[1][1], '%-(%d+)$')) end
end
local entries = {}
if limit > 0 then
  entries = redis.call('XRANGE', k_messages(sid), '0-' .. I(after + 1), '+', 'COUNT', limit + 1)
end
return {fields, kept, entries}

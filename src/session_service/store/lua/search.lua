-- Search one bounded slice of the user's sessions; the caller loops until done.
-- Scanning in slices keeps each call short, so Redis is never blocked for long.
-- Arguments: protocol.SearchArgs.
-- Returns {next_status_pos (0 = done), next_rank, pruned, sid, score, sid, score, ...}
local pruned = 0
if A.prune then pruned = prune(now_ms()) end
local budget, pos, rank = A.budget, A.status_pos, A.rank
local statuses = A.statuses
local n_status = #statuses
local q, ty = A.query, A.session_type
local ca_after, ca_before = A.created_after, A.created_before
local ua_after, ua_before = A.updated_after, A.updated_before
local meta = A.metadata
local n_meta = #meta / 2

local others = ty ~= '' or ca_after or ca_before or ua_after or ua_before or n_meta > 0

-- A text query alone (the common case, and the one that must stay fast) reads
-- just the two stored, already-lowered copies; other filters read what they need.
local function text_matches(sk)
  local f = redis.call('HMGET', sk, 'tl', 'dl')
  return (f[1] and string.find(f[1], q, 1, true) ~= nil)
    or (f[2] and string.find(f[2], q, 1, true) ~= nil) or false
end

local function matches(sid)
  local sk = k_session(sid)
  if not others then
    if q ~= '' then return text_matches(sk) end
    return redis.call('EXISTS', sk) == 1
  end
  local f = redis.call('HMGET', sk, 'ca', 'ua', 'ty')
  if not f[1] then return false end
  local ca, ua = tonumber(f[1]), tonumber(f[2])
  if ty ~= '' and (f[3] or 'troubleshooting') ~= ty then return false end
  if ca_after and not (ca > ca_after) then return false end
  if ca_before and not (ca < ca_before) then return false end
  if ua_after and not (ua > ua_after) then return false end
  if ua_before and not (ua < ua_before) then return false end
  for m = 1, #meta, 2 do
    if redis.call('HGET', sk, meta[m]) ~= meta[m + 1] then return false end
  end
  return q == '' or text_matches(sk)
end

local out = {0, 0, pruned}
while pos <= n_status and budget > 0 do
  local rows = redis.call('ZRANGE', k_status(statuses[pos]), rank, rank + budget - 1, 'WITHSCORES')
  for j = 1, #rows, 2 do
    if matches(rows[j]) then
      out[#out + 1] = rows[j]
      out[#out + 1] = rows[j + 1]
    end
  end
  local got = #rows / 2
  budget = budget - got
  if got == 0 or budget > 0 then
    pos, rank = pos + 1, 0
  else
    rank = rank + got
  end
end
if pos <= n_status then out[1], out[2] = pos, rank end
return out

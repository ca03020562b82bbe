-- Search one bounded slice of the user's sessions; the caller loops until done.
-- Scanning in slices keeps each call short, so Redis is never blocked for long.
-- ARGV: prune(0|1), budget, status_pos, rank, n_status, status*,
--       query_lower|'', session_type|'', created_after|'', created_before|'',
--       updated_after|'', updated_before|'', n_meta, (field, json)*
-- Returns {next_status_pos (0 = done), next_rank, pruned, sid, score, sid, score, ...}
local pruned = 0
if ARGV[1] == '1' then pruned = prune(now_ms()) end
local budget, pos, rank = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local n_status = tonumber(ARGV[5])
local statuses = {}
for i = 1, n_status do statuses[i] = ARGV[5 + i] end
local f0 = 6 + n_status
local q, ty = ARGV[f0], ARGV[f0 + 1]
local function num(v) if v == '' then return nil end return tonumber(v) end
local ca_after, ca_before = num(ARGV[f0 + 2]), num(ARGV[f0 + 3])
local ua_after, ua_before = num(ARGV[f0 + 4]), num(ARGV[f0 + 5])
local n_meta = tonumber(ARGV[f0 + 6])
local m0 = f0 + 7

local function matches(sid)
  local sk = k_session(sid)
  local f = redis.call('HMGET', sk, 't', 'd', 'tl', 'dl', 'ty', 'ca', 'ua')
  if not f[6] then return false end
  if ty ~= '' and (f[5] or 'troubleshooting') ~= ty then return false end
  local ca, ua = tonumber(f[6]), tonumber(f[7])
  if ca_after and not (ca > ca_after) then return false end
  if ca_before and not (ca < ca_before) then return false end
  if ua_after and not (ua > ua_after) then return false end
  if ua_before and not (ua < ua_before) then return false end
  for m = 0, n_meta - 1 do
    if redis.call('HGET', sk, ARGV[m0 + 2 * m]) ~= ARGV[m0 + 2 * m + 1] then return false end
  end
  if q ~= '' then
    local t = f[3] or string.lower(f[1] or '')
    if string.find(t, q, 1, true) then return true end
    local d = f[4] or string.lower(f[2] or '')
    return string.find(d, q, 1, true) ~= nil
  end
  return true
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

-- One page of sessions, most recent activity first, with an exact total.
-- A page is found by counting, never by reading the rows before it, so its cost
-- is the same at offset 0 and 10,000: one status is one ZREVRANGE; several are
-- a binary search for the activity time at the offset (ZCOUNT per status
-- index), then at most limit rows per index. Each status has its own index,
-- so writes to sessions of other statuses never move a page.
-- Returns {total, expired_sessions_pruned, sid, fields, sid, fields, ...};
-- total -1: expired sessions are still indexed (pruning is bounded), call again.
-- Arguments: protocol.ListArgs.
local now = now_ms()
local pruned = prune(now)
if expired_pending(now) then return {-1, pruned} end
local offset, limit = A.offset, A.limit
local idx = {}
for i = 1, #A.statuses do idx[#idx + 1] = k_status(A.statuses[i]) end
local total = 0
for _, k in ipairs(idx) do total = total + redis.call('ZCARD', k) end

-- Sessions whose last activity is at or after s, over every index.
local function since(s)
  local n = 0
  for _, k in ipairs(idx) do n = n + redis.call('ZCOUNT', k, s, '+inf') end
  return n
end

-- The page of the union, in ZREVRANGE order: activity descending, then id descending.
local function union_page()
  local lo, hi
  for _, k in ipairs(idx) do
    local first = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
    if first[2] then
      local a = math.floor(tonumber(first[2]))
      local b = math.floor(tonumber(redis.call('ZRANGE', k, -1, -1, 'WITHSCORES')[2]))
      if not lo or a < lo then lo = a end
      if not hi or b > hi then hi = b end
    end
  end
  -- The millisecond of the row at `offset`: the latest s with more than offset rows since s.
  while lo < hi do
    local mid = lo + math.floor((hi - lo + 1) / 2)
    if since(I(mid)) > offset then lo = mid else hi = mid - 1 end
  end
  -- Rows of that millisecond: skip the ones before the offset; then the older rows.
  local skip = offset - since(I(lo + 1))
  local rows = {}
  for _, k in ipairs(idx) do
    local r = redis.call('ZRANGE', k, '(' .. I(lo + 1), I(lo), 'BYSCORE', 'REV',
      'LIMIT', 0, skip + limit, 'WITHSCORES')
    for j = 1, #r, 2 do rows[#rows + 1] = {tonumber(r[j + 1]), r[j]} end
    r = redis.call('ZRANGE', k, '(' .. I(lo), '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, limit,
      'WITHSCORES')
    for j = 1, #r, 2 do rows[#rows + 1] = {tonumber(r[j + 1]), r[j]} end
  end
  table.sort(rows, function(a, b)
    if a[1] ~= b[1] then return a[1] > b[1] end
    return a[2] > b[2]
  end)
  local ids = {}
  for j = skip + 1, math.min(#rows, skip + limit) do ids[#ids + 1] = rows[j][2] end
  return ids
end

local ids = {}
if #idx == 1 then
  ids = redis.call('ZREVRANGE', idx[1], offset, offset + limit - 1)
elseif offset < total then
  ids = union_page()
end
local out = {total, pruned}
for _, sid in ipairs(ids) do
  out[#out + 1] = sid
  out[#out + 1] = redis.call('HGETALL', k_session(sid))
end
return out

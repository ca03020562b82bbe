-- One page of sessions, most recent activity first, with an exact total.
-- A page is found by counting, never by reading the rows before it, so its cost
-- is the same at offset 0 and 10,000: one status is one ZREVRANGE; several are
-- a binary search for the activity time at the offset (ZCOUNT per status
-- index), then at most limit rows per index. Each status has its own index,
-- so writes to sessions of other statuses never move a page.
-- Returns {total, expired_sessions_pruned, sid, fields, sid, fields, ...};
-- total -1: expired sessions are still indexed (pruning is bounded), call again.
-- Its shapes, decoded by the store: replies.py SessionPage.
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
  -- Rows of that millisecond, in page order (activity, then id, descending), over
  -- every index: the page starts at the one with exactly `skip` of them above it.
  -- Each index's rows of that millisecond are a run of ranks in the same order
  -- (ascending), so the start is found as the k-th of several sorted runs: each
  -- round takes the middle row of the widest window as a pivot, counts the rows
  -- below it by a binary search over ranks in every window, and narrows every window
  -- to the pivot's side. O(log n) rounds of O(indexes * log n) calls however many
  -- sessions share the millisecond (an import gives thousands the same activity, or
  -- fractions of it), where reading the skipped rows was O(n).
  local skip = offset - since(I(lo + 1))
  local runs, tied = {}, 0
  for _, k in ipairs(idx) do
    local a = redis.call('ZCOUNT', k, '-inf', '(' .. I(lo))
    local b = redis.call('ZCOUNT', k, '-inf', '(' .. I(lo + 1))
    runs[#runs + 1] = {k = k, a = a, b = b, lo = a, hi = b, stop = b}
    tied = tied + b - a
  end
  -- The row at rank i of run r, as {activity, id}; and the order of two rows.
  local function row_at(r, i)
    local got = redis.call('ZRANGE', r.k, i, i, 'WITHSCORES')
    return {tonumber(got[2]), got[1]}
  end
  local function below(x, y)
    if x[1] ~= y[1] then return x[1] < y[1] end
    return x[2] < y[2]
  end
  -- First rank in [a, b) of run r whose row is not below `row` (b when none is).
  local function first_from(r, row, a, b)
    while a < b do
      local mid = math.floor((a + b) / 2)
      if below(row_at(r, mid), row) then a = mid + 1 else b = mid end
    end
    return a
  end
  if skip > 0 then
    local target = tied - 1 - skip  -- rows of the millisecond below the page's first
    -- Each round shrinks the widest window, which always holds the target: at most
    -- the windows' summed log2 rounds. Guarded anyway: a script that has pruned
    -- (written) can no longer be killed, so it must never spin.
    for round = 1, 64 * #runs + 64 do
      local widest = runs[1]
      for _, r in ipairs(runs) do
        if r.hi - r.lo > widest.hi - widest.lo then widest = r end
      end
      if widest.hi <= widest.lo or round == 64 * #runs + 64 then
        error('list.lua: the page start inside a tie set was not found')
      end
      local mid = math.floor((widest.lo + widest.hi) / 2)
      local pivot = row_at(widest, mid)
      local count = 0
      for _, r in ipairs(runs) do
        r.cut = (r == widest) and mid or first_from(r, pivot, r.lo, r.hi)
        count = count + r.cut - r.a
      end
      if count == target then
        -- The page's rows of the millisecond: the pivot and every row below it.
        for _, r in ipairs(runs) do r.stop = (r == widest) and mid + 1 or r.cut end
        break
      end
      for _, r in ipairs(runs) do
        if count < target then
          r.lo = (r == widest) and mid + 1 or r.cut
        else
          r.hi = r.cut
        end
      end
    end
  end
  local rows = {}
  for _, r in ipairs(runs) do
    if r.stop > r.a then
      local got = redis.call('ZRANGE', r.k, math.max(r.a, r.stop - limit), r.stop - 1,
        'WITHSCORES')
      for j = 1, #got, 2 do rows[#rows + 1] = {tonumber(got[j + 1]), got[j]} end
    end
    local older = redis.call('ZRANGE', r.k, '(' .. I(lo), '-inf', 'BYSCORE', 'REV', 'LIMIT', 0,
      limit, 'WITHSCORES')
    for j = 1, #older, 2 do rows[#rows + 1] = {tonumber(older[j + 1]), older[j]} end
  end
  table.sort(rows, function(a, b)
    if a[1] ~= b[1] then return a[1] > b[1] end
    return a[2] > b[2]
  end)
  local ids = {}
  for j = 1, math.min(#rows, limit) do ids[#ids + 1] = rows[j][2] end
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

-- Search, one bounded call at a time, so Redis is never blocked for long.
-- A walk (a first page and the cursor pages after it) reads one snapshot of
-- its matches, a zset of session id -> last activity:
--   'scan' calls walk the status indexes in ascending (activity, id) order from
--     an exclusive cursor and add every match to the snapshot. Activity only
--     grows, so a session a heartbeat moves during the scan is met again
--     further on (a zset holds it once), never skipped.
--   'page' calls read the snapshot newest first from an exclusive (activity, id)
--     cursor. The snapshot never changes, so a walk never repeats or skips an
--     id; a session deleted or no longer matching since is left out.
-- The snapshot ends with a sentinel member '' at -inf, so an empty snapshot
-- still exists; a missing one ('gone') expired or was dropped for newer walks.
-- A snapshot joins the user's walks (K_SNAPSHOTS) when its scan completes, and
-- only then may newer walks drop it (the oldest beyond max_walks): a scan is
-- never dropped half-way, so walks running at once cannot undo each other's scans.
-- Arguments: protocol.SearchArgs.
-- Replies (replies.py ScanStep, SearchPage, Gone):
-- scan -> {'scan', done, cursor_score, cursor_sid, pruned} | {'gone'}
-- page -> {'page', done, cursor_score, cursor_sid, total, sid, fields, sid, fields, ...} | {'gone'}
local mode, snap_id = A.mode, A.walk
local budget, want = A.budget, A.want
local cs, csid, ttl = A.cursor_score, A.cursor_sid, A.ttl_ms
local statuses, wanted = A.statuses, {}
for i = 1, #statuses do wanted[statuses[i]] = true end
local q, ty = A.query, A.session_type
local ca_after, ca_before = A.created_after, A.created_before
local ua_after, ua_before = A.updated_after, A.updated_before
local meta = A.metadata
local n_meta = #meta / 2
local snap = base .. K_SNAPSHOT .. snap_id
local snaps = base .. K_SNAPSHOTS

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

local function before(a, b, rev)
  if a[1] ~= b[1] then
    if rev then return a[1] > b[1] end
    return a[1] < b[1]
  end
  if rev then return a[2] > b[2] end
  return a[2] < b[2]
end

-- The rank (ascending, 0-based) of the first row of zset k after (cs, csid) in
-- ascending order. The rows of the cursor's millisecond are ordered by member, so
-- a binary search over their ranks finds it: O(log^2 N) however many sessions
-- share that millisecond (an import gives thousands the same activity).
local function rank_after(k)
  local lo = redis.call('ZCOUNT', k, '-inf', '(' .. cs)
  local hi = redis.call('ZCOUNT', k, '-inf', cs)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if redis.call('ZRANGE', k, mid, mid)[1] > csid then hi = mid else lo = mid + 1 end
  end
  return lo
end

-- Up to n rows of zset k strictly after the cursor (cs, csid) in walk order
-- (ascending, or descending when rev). When the cursor's member still sits at the
-- cursor's score, its rank resolves the cursor; else rank_after does. Either way
-- one bounded range is read. Returns rows, and whether it stopped at n.
local function after(k, n, rev)
  local rows, raw = {}, nil
  if cs == '' then
    raw = redis.call(rev and 'ZREVRANGE' or 'ZRANGE', k, 0, n - 1, 'WITHSCORES')
  else
    local r
    if redis.call('ZSCORE', k, csid) == cs then
      r = redis.call(rev and 'ZREVRANK' or 'ZRANK', k, csid) + 1
    else
      r = rank_after(k)
      -- descending: the first row before the cursor is the one just below rank r,
      -- whose descending rank is card - r
      if rev then r = redis.call('ZCARD', k) - r end
    end
    raw = redis.call(rev and 'ZREVRANGE' or 'ZRANGE', k, r, r + n - 1, 'WITHSCORES')
  end
  -- {score, member, score as Redis wrote it}: the cursor keeps Redis' exact spelling.
  for j = 1, #raw, 2 do rows[#rows + 1] = {tonumber(raw[j + 1]), raw[j], raw[j + 1]} end
  return rows, #raw == 2 * n
end

if mode == 'scan' then
  local pruned = 0
  if cs == '' then
    pruned = prune(now_ms())
    redis.call('ZADD', snap, '-inf', '')
  elseif redis.call('EXISTS', snap) == 0 then
    return {'gone'}
  end
  -- Each index gives its next rows (sorted); every row up to the earliest last
  -- row of an index that stopped short is in walk order across all of them.
  local lists, bound, filled = {}, nil, {}
  for _, st in ipairs(statuses) do
    if redis.call('EXISTS', k_status(st)) == 1 then filled[#filled + 1] = st end
  end
  local per = math.max(100, math.floor(budget / math.max(1, #filled)))
  for _, st in ipairs(filled) do
    local rows, cut = after(k_status(st), per, false)
    lists[#lists + 1] = rows
    if cut and (not bound or before(rows[#rows], bound, false)) then bound = rows[#rows] end
  end
  local last = nil
  for _, rows in ipairs(lists) do
    for _, row in ipairs(rows) do
      if bound and before(bound, row, false) then break end
      if matches(row[2]) then redis.call('ZADD', snap, row[3], row[2]) end
      if not last or before(last, row, false) then last = row end
    end
  end
  redis.call('PEXPIRE', snap, ttl)
  if not bound then
    -- Complete: the walk joins the user's walks; the oldest beyond max_walks go.
    redis.call('ZADD', snaps, I(now_ms()), snap_id)
    local excess = redis.call('ZCARD', snaps) - A.max_walks
    if excess > 0 then
      for i, old in ipairs(redis.call('ZPOPMIN', snaps, excess)) do
        if i % 2 == 1 then redis.call('UNLINK', base .. K_SNAPSHOT .. old) end
      end
    end
    redis.call('PEXPIRE', snaps, ttl)
    return {'scan', 1, '', '', pruned}
  end
  return {'scan', 0, last[3], last[2], pruned}
end

-- page
if redis.call('EXISTS', snap) == 0 then return {'gone'} end
local rows, cut = after(snap, budget, true)
local out = {'page', 0, cs, csid, redis.call('ZCARD', snap) - 1}
local got, last = 0, nil
for j = 1, #rows do
  local sid = rows[j][2]
  if sid == '' then
    last = nil
    out[2] = 1
    break
  end
  last = rows[j]
  if wanted[redis.call('HGET', k_session(sid), 'st')] and matches(sid) then
    out[#out + 1] = sid
    out[#out + 1] = redis.call('HGETALL', k_session(sid))
    got = got + 1
    if got == want then
      if rows[j + 1] and rows[j + 1][2] == '' then out[2] = 1 end
      break
    end
  end
end
if not cut and got < want then out[2] = 1 end
if last then out[3], out[4] = last[3], last[2] end
if out[2] == 1 then
  redis.call('UNLINK', snap)
  redis.call('ZREM', snaps, snap_id)
else
  redis.call('PEXPIRE', snap, ttl)
end
return out

-- One page of sessions, most recent activity first, with an exact total.
-- Returns {total, expired_sessions_pruned, sid, fields, sid, fields, ...}
-- Arguments: protocol.ListArgs.
local now = now_ms()
local pruned = prune(now)
local offset, limit, statuses = A.offset, A.limit, A.statuses
local total, ids = 0, {}
if #statuses == 1 then
  total = redis.call('ZCARD', k_status(statuses[1]))
  ids = redis.call('ZREVRANGE', k_status(statuses[1]), offset, offset + limit - 1)
else
  local rows = {}
  for i = 1, #statuses do
    total = total + redis.call('ZCARD', k_status(statuses[i]))
    local r = redis.call('ZREVRANGE', k_status(statuses[i]), 0, offset + limit - 1, 'WITHSCORES')
    for j = 1, #r, 2 do rows[#rows + 1] = {r[j], tonumber(r[j + 1])} end
  end
  -- Same order as ZREVRANGE: score descending, then member descending.
  table.sort(rows, function(a, b)
    if a[2] ~= b[2] then return a[2] > b[2] end
    return a[1] > b[1]
  end)
  for j = offset + 1, math.min(#rows, offset + limit) do ids[#ids + 1] = rows[j][1] end
end
local out = {total, pruned}
for _, sid in ipairs(ids) do
  out[#out + 1] = sid
  out[#out + 1] = redis.call('HGETALL', k_session(sid))
end
return out

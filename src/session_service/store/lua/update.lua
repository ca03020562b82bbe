-- PATCH/PUT: fields, status (guarded) and merged metadata/context, atomically.
-- ARGV: sid, title_op, title, title_folded, desc_op, desc, desc_folded,
--       status|'', allowed_from_csv, archived_ttl_ms, max_keys, max_bytes,
--       n_meta, (key, json|'')*, n_ctx, (key, json|'')*, timeout_ms|'',
--       if_match (session ETag)
-- title_op/desc_op: '0' untouched, '1' set, '2' clear. json '' removes the key.
local sid = ARGV[1]
local now = now_ms()
local sk = k_session(sid)
local cur = redis.call('HMGET', sk, 'st', 'to', 'ci', 'la')
local st = cur[1]
if not st then return {'err', 'session_not_found'} end

local n_meta = tonumber(ARGV[13])
local ctx_at = 14 + 2 * n_meta
local n_ctx = tonumber(ARGV[ctx_at])
local target = ARGV[8]
local timeout = ARGV[ctx_at + 1 + 2 * n_ctx]
local touches_fields = ARGV[2] ~= '0' or ARGV[5] ~= '0' or n_meta > 0 or n_ctx > 0
  or timeout ~= ''
local failed = precondition(sid, 's', ARGV[ctx_at + 2 + 2 * n_ctx])
if failed then return failed end

if st == 'archived' then
  if target ~= '' and target ~= 'archived' then
    return {'err', 'invalid_status_transition', st}
  end
  if touches_fields then return {'err', 'session_archived'} end
  return {'ok', redis.call('HGETALL', sk)}
end

local changing = target ~= '' and target ~= st
if changing and not string.find(',' .. ARGV[9] .. ',', ',' .. st .. ',', 1, true) then
  return {'err', 'invalid_status_transition', st}
end

-- Check the merged objects' bounds before writing anything.
local function check(prefix, count, at, name)
  if count == 0 then return nil end
  local sizes = {}
  local all = redis.call('HGETALL', sk)
  for i = 1, #all, 2 do
    local f = all[i]
    if string.sub(f, 1, 2) == prefix then sizes[string.sub(f, 3)] = #f + #all[i + 1] + 2 end
  end
  for i = 0, count - 1 do
    local key, val = ARGV[at + 2 * i], ARGV[at + 2 * i + 1]
    if val == '' then sizes[key] = nil else sizes[key] = #key + #val + 4 end
  end
  local n, bytes = 0, 2
  for _, size in pairs(sizes) do n = n + 1; bytes = bytes + size end
  if n > tonumber(ARGV[11]) then return name .. ' would have more than ' .. ARGV[11] .. ' keys' end
  if bytes > tonumber(ARGV[12]) then
    return name .. ' would exceed ' .. ARGV[12] .. ' bytes when serialized'
  end
  return nil
end
local problem = check('m:', n_meta, 14, 'metadata') or check('x:', n_ctx, ctx_at + 1, 'context')
if problem then return {'err', 'validation_error', problem} end

local function apply(prefix, count, at)
  for i = 0, count - 1 do
    local key, val = ARGV[at + 2 * i], ARGV[at + 2 * i + 1]
    if val == '' then redis.call('HDEL', sk, prefix .. key)
    else redis.call('HSET', sk, prefix .. key, val) end
  end
end
apply('m:', n_meta, 14)
apply('x:', n_ctx, ctx_at + 1)

local function text(op, field, value, folded_field, folded)
  if op == '1' then
    redis.call('HSET', sk, field, value)
    if folded ~= '' then redis.call('HSET', sk, folded_field, folded)
    else redis.call('HDEL', sk, folded_field) end
  elseif op == '2' then
    redis.call('HDEL', sk, field, folded_field)
  end
end
text(ARGV[2], 't', ARGV[3], 'tl', ARGV[4])
text(ARGV[5], 'd', ARGV[6], 'dl', ARGV[7])

if timeout ~= '' then
  redis.call('HSET', sk, 'to', timeout)
  cur[2] = timeout
end
local ea = now + tonumber(cur[2])
redis.call('HSET', sk, 'ua', I(now), 'la', I(now))
if changing and target == 'archived' then
  local ttl = tonumber(ARGV[10])
  ea = ttl > 0 and now + ttl or 0
  redis.call('HSET', sk, 'ps', st, 'ar', I(now), 'st', 'archived', 'ea', I(ea))
  set_status(sid, st, 'archived', I(now))
elseif changing then
  redis.call('HSET', sk, 'st', target, 'ea', I(ea))
  set_status(sid, st, target, I(now))
else
  redis.call('HSET', sk, 'ea', I(ea))
  redis.call('ZADD', k_status(st), I(now), sid)
end
touch_session(sid)
expire_all(sid, ea, cur[3])
return {'ok', redis.call('HGETALL', sk)}

-- PATCH/PUT: fields, status (guarded) and merged metadata/context, atomically.
-- Arguments: protocol.UpdateArgs. title_op/desc_op: '0' untouched, '1' set,
-- '2' clear. In metadata and context (flat key, json lists) json '' removes the key.
local sid = A.sid
local now = now_ms()
local sk = k_session(sid)
local cur = redis.call('HMGET', sk, 'st', 'to', 'ci', 'la')
local st = cur[1]
if not st then return {'err', 'session_not_found'} end

local target = A.status
local timeout = A.timeout_ms
local touches_fields = A.title_op ~= '0' or A.desc_op ~= '0' or #A.metadata > 0
  or #A.context > 0 or timeout ~= nil
local failed = precondition(sid, 's', A.if_match)
if failed then return failed end

if st == 'archived' then
  if target ~= '' and target ~= 'archived' then
    return {'err', 'invalid_status_transition', st}
  end
  if touches_fields then return {'err', 'session_archived'} end
  return {'ok', redis.call('HGETALL', sk)}
end

local changing = target ~= '' and target ~= st
if changing and not string.find(',' .. A.allowed_from .. ',', ',' .. st .. ',', 1, true) then
  return {'err', 'invalid_status_transition', st}
end

-- A member's size in the object as served: its key as a JSON string (the service's
-- serializer writes '"', '\\' and \b \t \n \f \r in two bytes, the other control
-- characters as six-byte \u00XX, everything else as its UTF-8 bytes), ':', its
-- value (stored serialized) and a ',' (one too many, taken back below).
local function member_size(key, val)
  local _, short = string.gsub(key, '[\b\t\n\f\r"\\]', '')
  local _, long = string.gsub(key, '[%z\1-\7\11\14-\31]', '')
  return #key + short + 5 * long + 2 + 1 + #val + 1
end

-- Check the merged objects' bounds before writing anything.
local function check(prefix, changes, name)
  if #changes == 0 then return nil end
  local sizes = {}
  local all = redis.call('HGETALL', sk)
  for i = 1, #all, 2 do
    local f = all[i]
    if string.sub(f, 1, 2) == prefix then
      local key = string.sub(f, 3)
      sizes[key] = member_size(key, all[i + 1])
    end
  end
  for i = 1, #changes, 2 do
    local key, val = changes[i], changes[i + 1]
    if val == '' then sizes[key] = nil else sizes[key] = member_size(key, val) end
  end
  local n, bytes = 0, 1  -- '{' '}' and one ',' fewer than members; '{}' when empty
  for _, size in pairs(sizes) do n = n + 1; bytes = bytes + size end
  if n == 0 then bytes = 2 end
  if n > A.max_keys then return name .. ' would have more than ' .. I(A.max_keys) .. ' keys' end
  if bytes > A.max_bytes then
    return name .. ' would exceed ' .. I(A.max_bytes) .. ' bytes when serialized'
  end
  return nil
end
local problem = check('m:', A.metadata, 'metadata') or check('x:', A.context, 'context')
if problem then return {'err', 'validation_error', problem} end

local function apply(prefix, changes)
  for i = 1, #changes, 2 do
    local key, val = changes[i], changes[i + 1]
    if val == '' then redis.call('HDEL', sk, prefix .. key)
    else redis.call('HSET', sk, prefix .. key, val) end
  end
end
apply('m:', A.metadata)
apply('x:', A.context)

local function text(op, field, value, folded_field, folded)
  if op == '1' then
    redis.call('HSET', sk, field, value)
    if folded ~= '' then redis.call('HSET', sk, folded_field, folded)
    else redis.call('HDEL', sk, folded_field) end
  elseif op == '2' then
    redis.call('HDEL', sk, field, folded_field)
  end
end
text(A.title_op, 't', A.title, 'tl', A.title_folded)
text(A.desc_op, 'd', A.desc, 'dl', A.desc_folded)

if timeout ~= nil then
  redis.call('HSET', sk, 'to', I(timeout))
  cur[2] = timeout
end
local ea = now + tonumber(cur[2])
redis.call('HSET', sk, 'ua', I(now), 'la', I(now))
if changing and target == 'archived' then
  local ttl = A.archived_ttl_ms
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

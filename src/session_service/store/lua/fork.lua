-- Fork, step 3 of 3: make the copied conversation (built by copy.lua under dst's
-- keys) a session of the same user, atomically, if the source still exists, was
-- not rewound meanwhile, and the user has room. Anything refused drops the copy.
-- Arguments: protocol.ForkArgs.
local src, dst, through = A.src, A.dst, I(A.through)
local idem, fp = A.idem, A.fingerprint
local idem_key = base .. K_CREATE_IDEM .. idem
local now = now_ms()
if idem ~= '' then
  local rec = redis.call('GET', idem_key)
  if rec then
    local rfp, _, rsid = string.match(rec, '^([^|]*)|([^|]*)|(.*)$')
    if rsid and redis.call('EXISTS', k_session(rsid)) == 1 then
      drop_staging(dst)
      if rfp ~= fp then return {'err', 'idempotency_key_reused'} end
      return replay(idem_key, nil, rec, rsid, redis.call('HGETALL', k_session(rsid)))
    end
  end
end
local flat = redis.call('HGETALL', k_session(src))
if #flat == 0 then drop_staging(dst); return {'err', 'session_not_found'} end
local s = {}
for i = 1, #flat, 2 do s[flat[i]] = flat[i + 1] end
if (s.rg or '0') ~= A.generation then drop_staging(dst); return {'restart'} end
-- The copy was swept away meanwhile (an erase that keeps src): copy again.
if not staging_whole(dst, A.counters) then drop_staging(dst); return {'restart'} end
local pruned = prune(now)
if redis.call('ZCOUNT', k_expiry(), I(now), '+inf') >= A.max_sessions then
  drop_staging(dst)
  return {'err', 'session_limit_reached'}
end

-- A fork published while an erase runs, of a session that erase drops (created
-- at or before its cutoff, or itself such a fork), holds content written before
-- the erase: it is published like any fork and handed to the erase, which drops
-- it before it ends (erase.lua). Nothing is refused, so reads stay consistent.
local late = nil
local erasing = redis.call('ZRANGE', base .. K_ERASING, -1, -1, 'WITHSCORES')
if erasing[2] and (tonumber(s.ca or '0') <= tonumber(erasing[2])
    or redis.call('SISMEMBER', base .. K_ERASE_LATE, src) == 1) then
  late = base .. K_ERASE_LATE
end

local sk = k_session(dst)
local ea = now + tonumber(s.to)
local fields = {'v', s.v or '1', 'ca', I(now), 'ua', I(now), 'la', I(now), 'ea', I(ea),
  'to', s.to, 'ty', s.ty or 'troubleshooting', 'li', through, 'fs', src, 'fi', through}
local function copy(name) if s[name] then fields[#fields + 1] = name; fields[#fields + 1] = s[name] end end
copy('d'); copy('dl')
if A.title_given then
  if A.title ~= '' then
    fields[#fields + 1] = 't'; fields[#fields + 1] = A.title
    if A.title_folded ~= '' then fields[#fields + 1] = 'tl'; fields[#fields + 1] = A.title_folded end
  end
else
  copy('t'); copy('tl')
end
for name, value in pairs(s) do
  if string.sub(name, 1, 2) == 'm:' then fields[#fields + 1] = name; fields[#fields + 1] = value end
end
redis.call('DEL', k_copy_owner(dst))  -- a session now: the sweep keeps it as such
redis.call('HSET', sk, unpack(fields))
redis.call('HSET', sk, unpack(A.counters))
local mc = tonumber(redis.call('HGET', sk, 'mc') or '0')
local st = mc > 0 and 'in_progress' or 'active'
redis.call('HSET', sk, 'st', st)
redis.call('ZADD', k_status(st), I(now), dst)
expire_all(dst, ea, nil)
count_messages(dst, mc)
if idem ~= '' then redis.call('SET', idem_key, fp .. '|created|' .. dst, 'PX', A.idem_ttl_ms) end
if late then
  redis.call('SADD', late, dst)
  redis.call('PEXPIRE', late, math.max(1, redis.call('PTTL', base .. K_ERASING)))
end
return {'created', dst, redis.call('HGETALL', sk), pruned}

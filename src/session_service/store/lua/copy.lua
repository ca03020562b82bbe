-- One bounded slice of copying a conversation for fork and rewind: src's messages
-- with seq in (after, through] ('m'), or its summaries that cover at most through
-- ('y'), appended to dst's keys with the same ids. dst's tool-call bookkeeping is
-- rebuilt from the copied entries. dst has no session hash, so nothing reads it,
-- and its keys live ttl_ms at most: a copy that dies leaves nothing for long.
-- Every slice also (re)writes k_copy_owner(dst) = src with the same deadline.
-- Arguments: protocol.CopyArgs.
-- Replies (replies.py MessagesCopied, SummariesCopied, RecordsCopied, Restart):
-- 'm': {'messages', last seq, done, bytes, first ts|'', last ts|'', role counts}
--   role counts: role letter, messages, tokens for u, a, s, t (user, assistant, system, tool)
-- 'y': {'summaries', last seq, done, bytes, copied, last covers_through|'', last tokens|''}
-- For a rewind only, the append idempotency records of the kept messages (lib.lua):
-- 'i' those scored by seq in (after, through]; 'l' those an earlier release scored
-- by time (all kept), after the score `after`.
-- 'i', 'l': {'records', last score, done, bytes, entries read}
-- {'err', 'session_not_found'} or {'restart'} (src was rewound): dst is deleted.
local src, dst, what = A.src, A.dst, A.what
local through, after, count = A.through, A.after, A.count
local cur = redis.call('HMGET', k_session(src), 'st', 'rg')
if not cur[1] then drop_staging(dst); return {'err', 'session_not_found'} end
if (cur[2] or '0') ~= A.generation then drop_staging(dst); return {'restart'} end

local key = what == 'm' and k_messages(dst) or k_summaries(dst)
-- The staging must still hold every entry copied so far (it may have expired).
local function staged_tail()
  if what == 'i' or what == 'l' then
    local top = what == 'i'
      and redis.call('ZRANGE', k_idem_age(dst), '(' .. I(TIME_SCORES), '-inf', 'BYSCORE', 'REV',
        'LIMIT', 0, 1, 'WITHSCORES')
      or redis.call('ZRANGE', k_idem_age(dst), '+inf', I(TIME_SCORES), 'BYSCORE', 'REV',
        'LIMIT', 0, 1, 'WITHSCORES')
    return top[1] and tonumber(top[2]) or 0
  end
  local tail = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  return tail[1] and tonumber(string.match(tail[1][1], '%-(%d+)$')) or 0
end
if staged_tail() ~= after then drop_staging(dst); return {'restart'} end

local done, last, bytes = 0, after, 0
local out
if what == 'm' then
  local entries = redis.call('XRANGE', k_messages(src), '0-' .. I(after + 1), '0-' .. I(through),
    'COUNT', count)
  local roles = {u = {0, 0}, a = {0, 0}, s = {0, 0}, t = {0, 0}}
  local first_ts, last_ts = '', ''
  for _, e in ipairs(entries) do
    local seq = tonumber(string.match(e[1], '%-(%d+)$'))
    redis.call('XADD', key, e[1], unpack(e[2]))
    local f = entry_info(e[2])
    local r = roles[string.sub(f.r, 1, 1)]
    if r then r[1] = r[1] + 1; r[2] = r[2] + f.kc end
    tools_of_entry(dst, seq, f)
    bytes = bytes + f.bytes
    if first_ts == '' then first_ts = f.t end
    last_ts, last = f.t, seq
  end
  if #entries < count or last >= through then done = 1 end
  out = {'messages', last, done, bytes, first_ts, last_ts}
  for _, name in ipairs({'u', 'a', 's', 't'}) do
    out[#out + 1] = name; out[#out + 1] = roles[name][1]; out[#out + 1] = roles[name][2]
  end
elseif what == 'i' or what == 'l' then
  local age, entries = k_idem_age(src), nil
  if what == 'i' then
    entries = redis.call('ZRANGE', age, '(' .. I(after), I(through), 'BYSCORE', 'LIMIT', 0, count,
      'WITHSCORES')
  else
    local from = after > 0 and '(' .. I(after) or I(TIME_SCORES)
    entries = redis.call('ZRANGE', age, from, '+inf', 'BYSCORE', 'LIMIT', 0, count, 'WITHSCORES')
    -- Records of one millisecond share a score: the slice takes all of the last one's.
    if #entries > 0 then
      entries = redis.call('ZRANGE', age, from, entries[#entries], 'BYSCORE', 'WITHSCORES')
    end
  end
  local members = {}
  for i = 1, #entries, 2 do members[#members + 1] = entries[i] end
  if #members > 0 then
    local records = redis.call('HMGET', k_idem(src), unpack(members))
    for i, m in ipairs(members) do
      -- A record trimmed meanwhile (expired) is not copied; its index entry is, so
      -- the staged tail stays the cursor, and the next trim drops it.
      redis.call('ZADD', k_idem_age(dst), entries[2 * i], m)
      if records[i] then
        redis.call('HSET', k_idem(dst), m, records[i])
        bytes = bytes + #records[i]
      end
    end
    last = tonumber(entries[#entries])
  end
  if #members < count then done = 1 end
  out = {'records', last, done, bytes, #members}
else
  local entries = redis.call('XRANGE', k_summaries(src), '0-' .. I(after + 1), '+', 'COUNT', count)
  local copied, last_w, last_k = 0, '', ''
  if #entries < count then done = 1 end
  for _, e in ipairs(entries) do
    local f = entry_info(e[2])
    -- Summaries never cover less than the one before (summarize.lua), so the first
    -- one past `through` ends the copy.
    if tonumber(f.w) > through then done = 1; break end
    redis.call('XADD', key, e[1], unpack(e[2]))
    copied, last_w, last_k = copied + 1, f.w, I(f.k)
    last = tonumber(string.match(e[1], '%-(%d+)$'))
    bytes = bytes + f.bytes
  end
  out = {'summaries', last, done, bytes, copied, last_w, last_k}
end
for _, k in ipairs(keys_of(dst, STAGING_KEYS)) do
  redis.call('PEXPIRE', k, A.ttl_ms)
end
-- The copy's owner, with the copy's deadline: an erase's stray sweep keeps the copy
-- while src is a session the erase spares, and deletes it with src otherwise.
redis.call('SET', k_copy_owner(dst), src, 'PX', A.ttl_ms)
return out

-- Shared helpers, prepended to every script after the key suffixes (keys.py).
-- KEYS[1] is the user's key base "P:{U}:"; every key a script touches is
-- derived from it, so a script never leaves the user's Cluster slot.
--
-- ETAGS: RULES FOR EVERY SCRIPT THAT WRITES A SESSION (issue 14)
--   * A write that changes anything GET /sessions/{id} shows (any field,
--     status, deadline, last_activity_at, message_count...) calls
--     touch_session(sid) once.
--   * A write that changes the messages collection (append, rewind, a
--     summary) calls touch_messages(sid) instead; it touches the session too.
--   * A write that changes nothing (idempotent replay, re-archive) calls
--     neither: the same state keeps the same ETag.
--   * touch_session wakes the session's watchers (notify, the change feed). A
--     script that folds the 'ev'/'mv' increments into its own HSET instead of
--     calling touch_* (append, heartbeat) calls notify(sid) itself.
--   * A conditional write takes the caller's If-Match as one ARGV (prepared
--     by the store: '' none, '*' exists, else space-separated quoted tags)
--     and, right after its 404 check and before any 409/422, does
--       local failed = precondition(sid, 's' or 'm', expected)
--       if failed then return failed end
--     so the check and the write are one atomic step.
--   The ETag strings are built here and by store/codec.py (session_etag,
--   messages_etag) from the same fields: ca, ev (session), mv (messages).
local base = KEYS[1]

local function I(n) return string.format('%d', n) end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function k_session(sid) return base .. K_SESSION .. sid end
local function k_messages(sid) return base .. K_MESSAGES .. sid end
local function k_idem(sid) return base .. K_IDEM .. sid end
local function k_idem_age(sid) return base .. K_IDEM_AGE .. sid end
local function k_cases(sid) return base .. K_CASES .. sid end
local function k_tools(sid) return base .. K_TOOLS .. sid end
local function k_summaries(sid) return base .. K_SUMMARIES .. sid end
-- A copy in progress under staging id stg names the session it copies (copy.lua), so
-- an erase's stray sweep (erase_strays.lua) keeps the copies of the sessions it spares.
local function k_copy_owner(stg) return base .. K_COPY_OWNER .. stg end

-- The keys of session sid named by a list of suffixes (SESSION_KEYS, CONVERSATION_KEYS).
local function keys_of(sid, suffixes)
  local out = {}
  for i, suffix in ipairs(suffixes) do out[i] = base .. suffix .. sid end
  return out
end

-- Per-session structures of a conversation (agents, issue 13). Anything that
-- copies or cuts a conversation (fork, rewind) must keep all of them in step
-- (CONVERSATION_KEYS). The fields of the session hash and of message and summary
-- entries are declared, with their meanings, in store/fields.py (and checked there).
--   k_messages(sid)  stream 0-N = msg_N. Entries of earlier releases have no token
--                    count (estimated as ceil(#c / 4), in Lua and in Python alike).
--   k_tools(sid)     hash tool-call id -> '<assistant seq>' while unanswered,
--                    '<assistant seq>:<tool message seq>' once answered. At most
--                    max_messages entries; it shares the session's deadline.
--   k_summaries(sid) stream 0-N = sum_N.
local function k_status(st) return base .. K_STATUS .. st end
local function k_expiry() return base .. K_EXPIRY end
local function k_counts() return base .. K_COUNTS end
local function k_counters() return base .. K_COUNTERS end

local function hex(s)
  return (string.gsub(s, '.', function(c) return string.format('%02x', string.byte(c)) end))
end
local function k_client(ci) return base .. K_CLIENT .. hex(ci) end

-- THE CHANGE FEED (issue 24). Every write a watcher of the session must see
-- (anything that touches its ETags, a case link, its deletion) publishes one
-- notification on the prefix's feed channel, in the same atomic step as the write.
-- It only wakes watchers, which then re-read the stored state: it carries no data,
-- just "<user tag> <sid> <kind> <Redis time in µs>" (kind 'w' a write, 'k' the linked
-- cases). PUBLISH, not SPUBLISH: it reaches a subscriber on any node of a Cluster, a
-- Sentinel master's replicas, and a standalone server alike.
local FEED_CHANNEL = string.match(base, '^(.*):{') .. ':feed'
local FEED_TAG = string.match(base, '{([^}]*)}')
local notified = {}
local function notify(sid, kind)
  kind = kind or 'w'
  if notified[sid] == kind then return end
  notified[sid] = kind
  local t = redis.call('TIME')
  redis.call('PUBLISH', FEED_CHANNEL,
    FEED_TAG .. ' ' .. sid .. ' ' .. kind .. ' ' .. t[1] .. string.format('%06d', tonumber(t[2])))
end


-- Give every key of a session the same deadline (ea = 0 keeps them forever)
-- and record it in the user's expiry index, which is what reads trust.
local function expire_all(sid, ea, ci)
  local keys = keys_of(sid, SESSION_KEYS)
  if ci and ci ~= '' then
    -- A session whose client_id was freed (its successor deleted) takes it back.
    local owner = redis.call('GET', k_client(ci))
    if not owner then redis.call('SET', k_client(ci), sid) end
    if not owner or owner == sid then keys[#keys + 1] = k_client(ci) end
  end
  for _, k in ipairs(keys) do
    if ea > 0 then redis.call('PEXPIREAT', k, I(ea)) else redis.call('PERSIST', k) end
  end
  redis.call('ZADD', k_expiry(), ea > 0 and I(ea) or '+inf', sid)
end

-- The user's message total (GET /sessions/statistics) is a counter, never a scan.
-- Every script that changes how many messages a session has (append, rewind,
-- fork, import) calls count_messages(sid, n) with the session's new count; a
-- session that goes away (delete, expiry prune, eviction, delete-all) is
-- forgotten by drop_session. The per-session count lives outside the session
-- hash because an expired session's hash is already gone when it is pruned.
local function count_messages(sid, n)
  local old = tonumber(redis.call('HGET', k_counts(), sid) or '0')
  if n == old then return end
  redis.call('HSET', k_counts(), sid, I(n))
  redis.call('HINCRBY', k_counters(), 'messages', n - old)
end

-- An append's count_messages (of `added` messages): the stored count is the session's
-- previous one whenever it exists (count_messages keeps them equal), so it needs no read.
local function count_more(sid, n, added)
  local new = redis.call('HSET', k_counts(), sid, I(n))
  redis.call('HINCRBY', k_counters(), 'messages', new == 1 and n or added)
end

local function forget_messages(sid)
  local old = redis.call('HGET', k_counts(), sid)
  if not old then return end
  redis.call('HDEL', k_counts(), sid)
  redis.call('HINCRBY', k_counters(), 'messages', -tonumber(old))
end

local function drop_session(sid)
  notify(sid)
  forget_messages(sid)
  local ci = redis.call('HGET', k_session(sid), 'ci')
  if ci and redis.call('GET', k_client(ci)) == sid then redis.call('DEL', k_client(ci)) end
  -- UNLINK: a stream of 100,000 messages is freed in the background, not in the script.
  redis.call('UNLINK', unpack(keys_of(sid, SESSION_KEYS)))
  for _, st in ipairs(STATUSES) do redis.call('ZREM', k_status(st), sid) end
  redis.call('ZREM', k_expiry(), sid)
end

-- Remove up to PRUNE_BATCH sessions whose deadline has passed from the indexes.
-- The bound keeps every script short however many sessions expired at once;
-- reads that must be exact check expired_pending() and are called again.
local PRUNE_BATCH = 100
local function prune(now)
  local expired = redis.call('ZRANGE', k_expiry(), '-inf', '(' .. I(now), 'BYSCORE',
    'LIMIT', 0, PRUNE_BATCH)
  for _, sid in ipairs(expired) do drop_session(sid) end
  return #expired
end

local function expired_pending(now)
  return redis.call('ZCOUNT', k_expiry(), '-inf', '(' .. I(now)) > 0
end

local function set_status(sid, from, to, score)
  redis.call('ZREM', k_status(from), sid)
  redis.call('ZADD', k_status(to), score, sid)
end

-- SESSION_LIMIT_POLICY=evict_oldest: make room for `need` new sessions by deleting
-- the least recently active sessions that are not archived, at most `max` per call.
-- Returns the evicted ids, or nil (nothing deleted) when fewer than `need` such
-- sessions exist. The indexes must hold no expired session (prune first), so every
-- entry is live; archived sessions are never evicted.
local function evict_oldest(need, max)
  local evictable = 0
  for _, st in ipairs(EVICTABLE) do evictable = evictable + redis.call('ZCARD', k_status(st)) end
  if evictable < need then return nil end
  local evicted = {}
  while #evicted < math.min(need, max) do
    local best, best_score
    for _, st in ipairs(EVICTABLE) do
      local head = redis.call('ZRANGE', k_status(st), 0, 0, 'WITHSCORES')
      if head[1] then
        local score = tonumber(head[2])
        if not best or score < best_score or (score == best_score and head[1] < best) then
          best, best_score = head[1], score
        end
      end
    end
    drop_session(best)
    evicted[#evicted + 1] = best
  end
  return evicted
end

-- Versions behind the ETags (see the rules at the top).
local function touch_session(sid)
  redis.call('HINCRBY', k_session(sid), 'ev', 1)
  notify(sid)
end

local function touch_messages(sid)
  redis.call('HINCRBY', k_session(sid), 'mv', 1)
  touch_session(sid)
end

-- kind 's': the session's ETag; 'm': its messages collection's ETag.
local function etag(sid, kind)
  local f = redis.call('HMGET', k_session(sid), 'ca', kind == 'm' and 'mv' or 'ev')
  return '"' .. (f[1] or '0') .. '.' .. kind .. (f[2] or '0') .. '"'
end

-- nil when the write may go ahead, else the 412 reply naming the current ETag.
-- The session must exist (the 404 comes first).
-- `expected` (api/conditional.py): If-Match's tags or '*', and If-None-Match's each
-- prefixed with '!' ('!*' for '*'). It fails when If-Match names tags and none is the
-- current one, or when an If-None-Match tag is (the session exists when this runs).
local function precondition(sid, kind, expected)
  if not expected or expected == '' or expected == '*' then return nil end
  local current = etag(sid, kind)
  local wanted, matched = false, false
  for tag in string.gmatch(expected, '%S+') do
    if string.sub(tag, 1, 1) == '!' then
      local none = string.sub(tag, 2)
      if none == '*' or none == current then return {'err', 'precondition_failed', current} end
    else
      wanted = true
      if tag == '*' or tag == current then matched = true end
    end
  end
  if wanted and not matched then return {'err', 'precondition_failed', current} end
  return nil
end

-- Every answer 'replay' (an idempotent retry answered from its record) is built
-- here. A replay finds the original write done and writes nothing, but the WAIT
-- the store sends after it (REDIS_MIN_REPLICAS_ACK) counts only the writes of its
-- own connection: on another connection than the original's it would confirm
-- nothing. So replay() first rewrites the record unchanged (same value, same
-- expiry): a write that follows the original in the replication stream, which a
-- replica applies in order, so a replica that acknowledges it holds the original
-- too. `field` names the record's field in a hash (append records), nil for a
-- string record (creates, forks, summaries).
local function replay(key, field, record, ...)
  if field then redis.call('HSET', key, field, record)
  else redis.call('SET', key, record, 'KEEPTTL') end
  return {'replay', ...}
end

-- Append idempotency records: k_idem(sid) maps a key to 'fingerprint|seq|...|at'
-- (at: ms when written; the last field), and k_idem_age(sid) scores each key by the
-- seq of the message it answers, so a rewind finds the records of the messages it
-- removes (forget_appends) and they never outnumber the messages. Releases before
-- this scored by time (ms, at least TIME_SCORES): such records are trimmed by time
-- and never forgotten by a rewind (a retry of one whose message went is refused).
-- Valkey 8.1 has no per-field TTL: each keyed append drops up to IDEM_TRIM expired
-- records, oldest first. A record past its TTL is never honoured either way.
local IDEM_TRIM = 10
local TIME_SCORES = 1000000000000
local function remember_append(sid, idem, record, now, ttl, seq)
  local age, records = k_idem_age(sid), k_idem(sid)
  -- Keys are remembered in seq order, so the oldest records are the lowest.
  for _ = 1, IDEM_TRIM do
    local head = redis.call('ZRANGE', age, 0, 0, 'WITHSCORES')
    if not head[1] or tonumber(head[2]) >= TIME_SCORES then break end
    local rec = redis.call('HGET', records, head[1])
    local at = rec and tonumber(string.match(rec, '|(%d+)$'))
    if rec and (not at or now - at <= ttl) then break end
    redis.call('HDEL', records, head[1])
    redis.call('ZREM', age, head[1])
  end
  local old = redis.call('ZRANGE', age, I(TIME_SCORES), '(' .. I(now - ttl), 'BYSCORE',
    'LIMIT', 0, IDEM_TRIM)
  if #old > 0 then
    redis.call('HDEL', records, unpack(old))
    redis.call('ZREM', age, unpack(old))
  end
  redis.call('HSET', records, idem, record)
  redis.call('ZADD', age, I(seq), idem)
end

-- A rewind to `to` forgets the keys of the appends it removes: a retry with one of
-- them is a new append. At most one record per removed message.
local function forget_appends(sid, to)
  local gone = redis.call('ZRANGE', k_idem_age(sid), '(' .. I(to), '(' .. I(TIME_SCORES),
    'BYSCORE')
  if #gone > 0 then
    redis.call('HDEL', k_idem(sid), unpack(gone))
    redis.call('ZREM', k_idem_age(sid), unpack(gone))
  end
end

-- APPENDING (append.lua one message, append_batch.lua up to 64 in one step). Both
-- read the session with read_for_append, check each message with check_message
-- before anything is written, store each with store_message (a batch's tool calls
-- then with write_tools) and write the session back once with finish_append; the
-- idempotency record is the same for both.

-- An append's idempotency record: 'fingerprint|last seq|message count|at ms', where
-- last seq is the (last) message the keyed request stored. A batch's messages have
-- consecutive seqs, so its record is the same shape: the request gives their number.
local function append_record(fingerprint, last, count, now)
  return fingerprint .. '|' .. I(last) .. '|' .. I(count) .. '|' .. I(now)
end

-- What an Idempotency-Key already answered: 'same', last seq, count and the record
-- (for replay()) when the same request stored it within ttl; 'other' when another
-- request did; nil when unused.
local function append_seen(sid, idem, fingerprint, ttl, now)
  local prev = redis.call('HGET', k_idem(sid), idem)
  if not prev then return nil end
  local pfp, pn, ptotal, pat = string.match(prev, '^([^|]*)|(%d+)|(%d+)|(%d+)$')
  if not pat or now - tonumber(pat) > ttl then return nil end
  if pfp == fingerprint then return 'same', tonumber(pn), tonumber(ptotal), prev end
  return 'other'
end

-- The session fields an append reads (and writes back in finish_append), by name,
-- with the counters named in `...` (the message and token counters, n<r> and k<r>, of
-- the roles it adds to). s.st is false when the session does not exist.
local function read_for_append(sid, ...)
  local v = redis.call('HMGET', k_session(sid), 'st', 'mc', 'lm', 'to', 't', 'nu', 'ci', 'sn',
    'li', 'tk', 'ca', 'mv', 'ev', ...)
  -- One constructor sizes the table once (the append is the hottest script).
  local s = {st = v[1], mc = v[2], lm = v[3], to = v[4], t = v[5], nu = v[6], ci = v[7],
    sn = v[8], li = v[9], tk = v[10], ca = v[11], mv = v[12], ev = v[13]}
  for i = 1, select('#', ...) do s[(select(i, ...))] = v[13 + i] end
  return s
end

-- A batch's view of the tool calls its messages make: a tool result may answer a call
-- of an earlier message of the same batch, which is not in the tools hash yet (seq:
-- id -> the seq of the message making it; n: how many; stored: the hash's size).
local function new_calls() return {seq = {}, answered = {}, n = 0} end

-- Whether message m (fields as append_batch.lua builds them) may be appended as seq
-- `seq` when the session holds `count` messages and summaries: nil, or the error
-- reply the append of m alone would give. Checks before anything is written; with
-- `calls` (new_calls, nil for a single message) it counts the calls and answers of
-- the batch's earlier messages and notes m's. Sets m.call_seq, the seq of the call a
-- tool result answers.
local function check_message(sid, m, seq, count, max, calls)
  if count >= max then return {'err', 'session_full'} end -- summaries count as messages
  local tools, tcid, ids = k_tools(sid), m.tool_call_id, m.call_ids
  if tcid ~= '' then
    local ref = calls and calls.seq[tcid] or redis.call('HGET', tools, tcid)
    if not ref then return {'err', 'unknown_tool_call'} end
    if (calls and calls.answered[tcid]) or string.find(ref, ':', 1, true) then
      return {'err', 'tool_call_already_answered'}
    end
    m.call_seq = ref
    if calls then calls.answered[tcid] = true end
  end
  if #ids > 0 then
    local stored = calls and calls.stored or redis.call('HLEN', tools)
    local made = calls and calls.n or 0
    if stored + made + #ids > max then return {'err', 'session_full'} end
    local known = redis.call('HMGET', tools, unpack(ids))
    for j, id in ipairs(ids) do
      if known[j] or (calls and calls.seq[id]) then return {'err', 'duplicate_tool_call', id} end
    end
    if calls then
      local made_by = I(seq)
      for _, id in ipairs(ids) do calls.seq[id] = made_by end
      calls.stored, calls.n = stored, made + #ids
    end
  end
  return nil
end

-- Store checked message m as seq n at time ts, with its tool bookkeeping: written at
-- once, or with `tools` added to that list (field, value pairs) for write_tools, as a
-- batch does: one HSET for a whole batch costs a fraction of one per message (a batch
-- may make 2,048 calls).
local function store_message(sid, m, n, ts, tools)
  local seq = I(n)
  local entry = {'r', m.role, 'c', m.content, 't', I(ts), 'm', m.metadata, 'k', I(m.tokens),
    'e', m.estimated and '1' or '0'}
  if m.tool_calls ~= '' then entry[#entry + 1] = 'tc'; entry[#entry + 1] = m.tool_calls end
  local mine = tools or {}
  if m.call_seq then
    entry[#entry + 1] = 'ti'; entry[#entry + 1] = m.tool_call_id
    entry[#entry + 1] = 'ta'; entry[#entry + 1] = m.call_seq
    mine[#mine + 1] = m.tool_call_id; mine[#mine + 1] = m.call_seq .. ':' .. seq
  end
  for _, id in ipairs(m.call_ids) do mine[#mine + 1] = id; mine[#mine + 1] = seq end
  if not tools and #mine > 0 then redis.call('HSET', k_tools(sid), unpack(mine)) end
  redis.call('XADD', k_messages(sid), '0-' .. seq, unpack(entry))
end

-- The tool bookkeeping of a batch's messages, in their order (a call a later message
-- of the batch answers is written made, then answered: the last value wins).
local function write_tools(sid, tools)
  if #tools > 0 then redis.call('HSET', k_tools(sid), unpack(tools)) end
end

-- Write back what storing `added` messages (seqs up to `last`, at ts) changed: the
-- session fields in one HSET (the counters by role from `by_role`: role letter,
-- messages, tokens, letter, ...), the status, the user's counters, the idempotency
-- record and the deadline. One activity and one move of the messages ETag, whatever
-- `added` is. s: read_for_append's fields; idem: the key's digest ('' none) and its
-- request's fingerprint. Returns the message count, the status and the new messages ETag.
local function finish_append(sid, s, added, last, ts, now, by_role, tokens, title, title_folded,
    idem, fingerprint, ttl)
  local mc = tonumber(s.mc or '0')
  local count = mc + added
  local ea = now + tonumber(s.to)
  local st = s.st
  local fields = {'mc', I(count), 'li', I(last), 'lm', I(ts), 'la', I(now), 'ea', I(ea)}
  if mc == 0 then fields[#fields + 1] = 'fm'; fields[#fields + 1] = I(ts) end
  if st == 'active' then
    set_status(sid, 'active', 'in_progress', I(now))
    st = 'in_progress'
    fields[#fields + 1] = 'st'; fields[#fields + 1] = st
  end
  local user = false
  for i = 1, #by_role, 3 do
    local r = by_role[i]
    local n, k = 'n' .. r, 'k' .. r
    fields[#fields + 1] = n; fields[#fields + 1] = I(tonumber(s[n] or '0') + by_role[i + 1])
    fields[#fields + 1] = k; fields[#fields + 1] = I(tonumber(s[k] or '0') + by_role[i + 2])
    user = user or r == 'u'
  end
  -- The first user message titles an untitled session (the caller sends its title).
  if user and not s.nu and (not s.t or s.t == '') and title ~= '' then
    fields[#fields + 1] = 't'; fields[#fields + 1] = title
    if title_folded ~= '' then fields[#fields + 1] = 'tl'; fields[#fields + 1] = title_folded end
  end
  local mv = tonumber(s.mv or '0') + 1 -- touch_messages, folded into the HSET
  fields[#fields + 1] = 'tk'; fields[#fields + 1] = I(tonumber(s.tk or '0') + tokens)
  fields[#fields + 1] = 'mv'; fields[#fields + 1] = I(mv)
  fields[#fields + 1] = 'ev'; fields[#fields + 1] = I(tonumber(s.ev or '0') + 1)
  redis.call('HSET', k_session(sid), unpack(fields))
  notify(sid)  -- touch_session folded in: wake the change feed's watchers
  count_more(sid, count, added)
  redis.call('ZADD', k_status(st), I(now), sid)
  if idem ~= '' then
    -- Scored by the first message it stored: a rewind that removes any of a batch's
    -- messages but not all keeps the key, whose retry is then refused, never stored twice.
    remember_append(sid, idem, append_record(fingerprint, last, count, now), now, ttl,
      last - added + 1)
  end
  expire_all(sid, ea, s.ci)
  -- etag(sid, 'm') from what was just written (the record always has 'ca').
  return count, st, '"' .. (s.ca or '0') .. '.m' .. mv .. '"'
end

-- Copying and cutting conversations (fork, rewind). A copy is built in slices
-- (copy.lua) under the keys of an id that has no session hash yet, so nothing
-- reads it; drop_staging removes what a copy built when it is abandoned. UNLINK: a
-- copy of 100,000 messages and tool calls is freed off the main thread, even on a
-- server that frees DEL's keys on it (Redis 7's default, lazyfree-lazy-user-del no).
local function drop_staging(sid)
  redis.call('UNLINK', k_copy_owner(sid), unpack(keys_of(sid, STAGING_KEYS)))
end

-- Whether a copy's staging still holds what its slices reported (`counters`: the
-- copied part's, as name/value pairs). A staging id has no session record, so an
-- erase's sweep of the keys of no live session (erase_strays.lua) may delete it
-- under a copy of a session the erase keeps: publishing it then would give a session
-- counters that promise messages its conversation no longer holds.
local function staging_whole(sid, counters)
  local want = {}
  for i = 1, #counters, 2 do want[counters[i]] = tonumber(counters[i + 1]) end
  return redis.call('XLEN', k_messages(sid)) == (want.mc or 0)
    and redis.call('XLEN', k_summaries(sid)) >= (want.sn or 0)
end

-- The fields of a message (or summary) entry by name, its tokens k (the documented
-- estimate for entries without a count), kc the tokens the session's counters hold
-- for it (entries of earlier releases were never counted), and its size in bytes.
local function entry_info(fields)
  local f, bytes = {}, 0
  for i = 1, #fields, 2 do
    f[fields[i]] = fields[i + 1]
    bytes = bytes + #fields[i + 1]
  end
  local stored = tonumber(f.k)
  f.kc = stored or 0
  f.k = stored or math.ceil(#(f.c or '') / 4)
  f.bytes = bytes
  return f
end

-- What message `seq` (an entry_info) adds to sid's tool-call hash: the calls an
-- assistant message makes, or the answer a tool message gives.
local function tools_of_entry(sid, seq, f)
  if f.tc then
    for _, call in ipairs(cjson.decode(f.tc)) do
      if type(call) == 'table' and call.id then
        redis.call('HSET', k_tools(sid), tostring(call.id), I(seq))
      end
    end
  end
  if f.ti and f.ta then redis.call('HSET', k_tools(sid), f.ti, f.ta .. ':' .. I(seq)) end
end

-- The id the next append takes: after the highest id ever given (li), which a
-- rewind leaves where it was, so ids are never reused. Sessions written before
-- rewind existed have no li; their highest id is their message count.
local function last_id(cur_li, cur_mc)
  return math.max(tonumber(cur_li or '0'), tonumber(cur_mc or '0'))
end

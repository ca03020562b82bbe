-- Search, step 2: which of a bounded chunk of sessions match the filters.
-- Called once per chunk so Redis is never blocked for long.
-- ARGV: query_lower|'', session_type|'', created_after|'', created_before|'',
--       updated_after|'', updated_before|'', n_meta, (field, json)*, sid, ...
local q, ty = ARGV[1], ARGV[2]
local function num(v) if v == '' then return nil end return tonumber(v) end
local ca_after, ca_before, ua_after, ua_before = num(ARGV[3]), num(ARGV[4]), num(ARGV[5]), num(ARGV[6])
local n_meta = tonumber(ARGV[7])
local first_sid = 8 + 2 * n_meta
local out = {}
for i = first_sid, #ARGV do
  local sid = ARGV[i]
  local f = redis.call('HMGET', k_session(sid), 't', 'd', 'tl', 'dl', 'ty', 'ca', 'ua')
  local ok = f[6] ~= false and f[6] ~= nil
  if ok and ty ~= '' then ok = (f[5] or 'troubleshooting') == ty end
  if ok and ca_after then ok = tonumber(f[6]) > ca_after end
  if ok and ca_before then ok = tonumber(f[6]) < ca_before end
  if ok and ua_after then ok = tonumber(f[7]) > ua_after end
  if ok and ua_before then ok = tonumber(f[7]) < ua_before end
  if ok and n_meta > 0 then
    for m = 0, n_meta - 1 do
      if redis.call('HGET', k_session(sid), ARGV[8 + 2 * m]) ~= ARGV[9 + 2 * m] then
        ok = false
        break
      end
    end
  end
  if ok and q ~= '' then
    local t = f[3] or string.lower(f[1] or '')
    local d = f[4] or string.lower(f[2] or '')
    ok = string.find(t, q, 1, true) ~= nil or string.find(d, q, 1, true) ~= nil
  end
  if ok then out[#out + 1] = sid end
end
return out

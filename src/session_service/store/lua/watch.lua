-- The user's open watchers of the change feed, for MAX_WATCHERS_PER_USER across every
-- worker and instance: a zset watcher id -> end of its lease (ms, Redis time). A worker
-- renews its watchers' leases every heartbeat, so a crashed worker's slots lapse by
-- themselves. Arguments: protocol.WatchArgs.
-- Reply: {'ok'} | {'err', 'too_many_watchers'}
local key = base .. K_WATCHERS
local op, lease, max, ids = A.op, A.lease_ms, A.max_watchers, A.ids
if #ids == 0 then return {'ok'} end
if op == 'close' then
  redis.call('ZREM', key, unpack(ids))
  return {'ok'}
end
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. I(now))
if op == 'open' and redis.call('ZCARD', key) + #ids > max then
  return {'err', 'too_many_watchers'}
end
local args = {}
for _, id in ipairs(ids) do
  args[#args + 1] = I(now + lease)
  args[#args + 1] = id
end
redis.call('ZADD', key, unpack(args))
redis.call('PEXPIRE', key, lease)
return {'ok'}

#!lua flags=allow-oom
--[[
  Record the bot's lifetime totals for the current interval in a fixed ring, and
  this gateway's dispatcher heartbeat.

  The ring holds one field per slot (interval number mod `slots`): a field holds
  "interval,sent,rate_limited,failed,enqueued". The first gateway to sample an
  interval writes it and later samplers of the same interval leave it, so every
  interval has one value however many gateways run; the ring never grows.

  KEYS[1] stats        hash  lifetime counters (sent, rate_limited, failed, enqueued)
  KEYS[2] throughput   hash  the ring: slot -> "interval,sent,rate_limited,failed,enqueued"
  KEYS[3] dispatchers  zset  gateway origin -> its dispatcher's last heartbeat (ms)

  ARGV[1] prefix       key prefix (with the hash tag)
  ARGV[2] config       the static configuration (JSON; unused)
  ARGV[3] origin       this gateway's id
  ARGV[4] live         '1': this gateway's dispatcher for the bot runs
  ARGV[5] interval_ms  the length of one interval
  ARGV[6] slots        the ring's size
  ARGV[7] keep_ms      heartbeats older than this are removed

  Returns the Redis time (ms) of the sample.
]]
local stats, ring, dispatchers = KEYS[1], KEYS[2], KEYS[3]
local origin, live = ARGV[3], ARGV[4] == '1'
local interval, slots, keep = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])

-- @include time_ms

local now = time_ms()
local n = math.floor(now / interval)
local slot = string.format('%d', n % slots)
local held = redis.call('HGET', ring, slot)
if not held or tonumber(string.match(held, '^(%d+),')) ~= n then
  local t = redis.call('HMGET', stats, 'sent', 'rate_limited', 'failed', 'enqueued')
  redis.call('HSET', ring, slot, string.format('%d,%d,%d,%d,%d', n,
    tonumber(t[1] or 0), tonumber(t[2] or 0), tonumber(t[3] or 0), tonumber(t[4] or 0)))
end

if live then
  redis.call('ZADD', dispatchers, now, origin)
else
  -- A dead dispatcher stops counting at once, not only when its heartbeat ages out.
  redis.call('ZREM', dispatchers, origin)
end
redis.call('ZREMRANGEBYSCORE', dispatchers, '-inf', '(' .. (now - keep))
return now

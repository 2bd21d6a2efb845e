#!lua flags=allow-oom
--[[
  The receiver acknowledged job `job`'s event `cursor`: it leaves the outbox and the
  job's next event is due now. Nothing changes when `cursor` is no longer the job's
  first pending event (its lease ran out and another sender got there first).

  KEYS[1] outbox  hash  cursor -> the event's fields (JSON)
  KEYS[2] times   zset  cursor -> the event's time (ms)
  KEYS[3] due     zset  job id -> when its first pending event is due (ms)
  KEYS[4] tries   hash  job id -> failed attempts of its first pending event
  KEYS[5] state   hash  read, delivered, undeliverable

  ARGV[1] prefix  key prefix (with the hash tag)
  ARGV[2] config  the webhook policy (JSON)
  ARGV[3] job     the job's id
  ARGV[4] cursor  the event's cursor

  Returns OK, or STALE.
]]
local outbox, times, due, tries, state = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local prefix = ARGV[1]
local job, cursor = ARGV[3], ARGV[4]

-- @include codes
-- @include queue:time_ms
-- @include advance

if redis.call('LINDEX', prefix .. 'wh:job:' .. job, 0) ~= cursor then
  return STALE
end
advance(prefix, outbox, times, due, tries, job, time_ms())
redis.call('HINCRBY', state, 'delivered', 1)
return OK

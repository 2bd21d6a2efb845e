#!lua flags=allow-oom
--[[
  A POST of job `job`'s event `cursor` failed: try again after `delay` ms, but not
  later than the event's max age; once the event is that old it is undeliverable
  (counted, kept in the dead list) and the job's next event is due now. Nothing
  changes when `cursor` is no longer the job's first pending event.

  KEYS[1] outbox  hash  cursor -> the event's fields (JSON)
  KEYS[2] times   zset  cursor -> the event's time (ms)
  KEYS[3] due     zset  job id -> when its first pending event is due (ms)
  KEYS[4] tries   hash  job id -> failed attempts of its first pending event
  KEYS[5] state   hash  read, delivered, undeliverable
  KEYS[6] dead    list  the newest undeliverable events (JSON)

  ARGV[1] prefix  key prefix (with the hash tag)
  ARGV[2] config  the webhook policy (JSON: max_age_ms, dead_max)
  ARGV[3] job     the job's id
  ARGV[4] cursor  the event's cursor
  ARGV[5] delay   ms until the next attempt
  ARGV[6] error   what went wrong (kept with an undeliverable event)

  Returns {code, tries}: RETRY, GAVE_UP (undeliverable now), or STALE; tries = the
  event's failed attempts so far.
]]
local outbox, times, due, tries, state, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local prefix, cfg = ARGV[1], cjson.decode(ARGV[2])
local job, cursor, delay, err = ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]

-- @include codes
-- @include queue:time_ms
-- @include advance
-- @include undeliverable

if redis.call('LINDEX', prefix .. 'wh:job:' .. job, 0) ~= cursor then
  return { STALE, 0 }
end
local now = time_ms()
local failed = redis.call('HINCRBY', tries, job, 1)
local deadline = tonumber(redis.call('ZSCORE', times, cursor) or now) + cfg.max_age_ms
if now >= deadline then
  undeliverable(state, dead, cfg.dead_max, 1, cjson.encode({
    cursor = cursor, event = cjson.decode(redis.call('HGET', outbox, cursor) or '{}'),
    attempts = failed, error = err, at = now,
  }))
  advance(prefix, outbox, times, due, tries, job, now)
  return { GAVE_UP, failed }
end
redis.call('ZADD', due, math.min(now + delay, deadline), job)
return { RETRY, failed }

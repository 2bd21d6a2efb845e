#!lua flags=allow-oom
--[[
  A send failed transiently (5xx, timeout, network): count the attempt and
  schedule the next one after `backoff` ms, or fail the job when its attempts
  are used up.

  KEYS[1] active   zset  leased job ids
  KEYS[2] delayed  zset  job ids not yet due, score = due time (ms)
  KEYS[3] failed   zset  failed job ids, score = time they failed
  KEYS[4] stats    hash  lifetime counters
  KEYS[5] events   stream  job state changes (includes/events.lua)

  ARGV[1] prefix      key prefix (with the hash tag)
  ARGV[2] config      the static configuration (JSON; keep_failed, keep_age_ms,
                      max_attempts: for jobs that did not set their own; origin)
  ARGV[3] job_id      job id
  ARGV[4] token       lease token
  ARGV[5] error       error description
  ARGV[6] backoff_ms  backoff before the next attempt (ms)

  Returns {code, attempts, woke}: code SCHEDULED, EXHAUSTED (the job failed: its
  attempts are used up), LEASE_LOST or JOB_NOT_FOUND; woke = 1 when the other
  replicas were woken (the retry is due before anything else that was delayed).
]]
local active, delayed, failed, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, cfg = ARGV[1], cjson.decode(ARGV[2])
local events = KEYS[5]
local id, token, err, backoff = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])

-- @include time_ms
-- @include check_lease
-- @include retention
-- @include wake
-- @include events

local jk = prefix .. 'job:' .. id
local refused = check_lease(jk, token)
if refused then
  return { refused, 0, 0 }
end
local now = time_ms()
redis.call('ZREM', active, id)
local attempts = redis.call('HINCRBY', jk, 'a', 1)
local max_attempts = tonumber(redis.call('HGET', jk, 'ma') or cfg.max_attempts)
redis.call('HSET', jk, 'e', err)
if attempts >= max_attempts then
  finish(prefix, failed, jk, id, FAILED, now, cfg)
  emit(events, jk, id, FAILED, now, cfg, err)
  redis.call('HINCRBY', stats, 'failed', 1)
  trim(prefix, failed, cfg.keep_failed, cfg.keep_age_ms, now)
  return { EXHAUSTED, attempts, 0 }
end
local due = now + backoff
local head = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
redis.call('HSET', jk, 's', DELAYED, 'u', now, 'due', due)
redis.call('ZADD', delayed, due, id)
emit(events, jk, id, DELAYED, now, cfg, err)
redis.call('HINCRBY', stats, 'retried', 1)
if #head == 0 or due < tonumber(head[2]) then
  wake(prefix, cfg.origin)
  return { SCHEDULED, attempts, 1 }
end
return { SCHEDULED, attempts, 0 }

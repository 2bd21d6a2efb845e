#!lua flags=allow-oom
--[[
  A send failed transiently (5xx, timeout, network): count the attempt and
  schedule the next one after `backoff` ms, or fail the job when its attempts
  are used up.

  KEYS[1] active   zset  leased job ids
  KEYS[2] delayed  zset  job ids not yet due, score = due time (ms)
  KEYS[3] failed   zset  failed job ids, score = time they failed
  KEYS[4] stats    hash  lifetime counters

  ARGV[1] key prefix (with the hash tag)
  ARGV[2] job id
  ARGV[3] lease token
  ARGV[4] error description
  ARGV[5] backoff ms before the next attempt
  ARGV[6] failed jobs kept; ARGV[7] their maximum age ms (0 = no limit)
  ARGV[8] attempts allowed for jobs that did not set their own

  Returns {code, attempts}: code 1 = scheduled again, 2 = failed (attempts used
  up), 0 = ignored (the lease was lost), -1 = no such job.
]]
local active, delayed, failed, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix = ARGV[1]

-- @include common

local id, token, err = ARGV[2], ARGV[3], ARGV[4]
local jk = prefix .. 'job:' .. id
if redis.call('EXISTS', jk) == 0 then
  return { -1, 0 }
end
if not leased(jk, token) then
  return { 0, 0 }
end
local now = time_ms()
redis.call('ZREM', active, id)
local attempts = redis.call('HINCRBY', jk, 'a', 1)
local max_attempts = tonumber(redis.call('HGET', jk, 'ma') or ARGV[8])
redis.call('HSET', jk, 'e', err)
if attempts >= max_attempts then
  finish(failed, jk, id, FAILED, now)
  redis.call('HINCRBY', stats, 'failed', 1)
  trim(failed, tonumber(ARGV[6]), tonumber(ARGV[7]), now)
  return { 2, attempts }
end
local due = now + tonumber(ARGV[5])
local head = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
redis.call('HSET', jk, 's', DELAYED, 'u', now, 'due', due)
redis.call('ZADD', delayed, due, id)
redis.call('HINCRBY', stats, 'retried', 1)
if #head == 0 or due < tonumber(head[2]) then
  wake()
end
return { 1, attempts }

#!lua flags=allow-oom
--[[
  Put a failed job back in the queue (RetryJob) with a fresh attempt budget.
  It keeps its rank, so it goes ahead of newer messages of its priority.

  KEYS[1] failed      zset  failed job ids
  KEYS[2] waiting     zset  index of waiting job ids
  KEYS[3] ready       zset  chats that may send now
  KEYS[4] paced       zset  chats held by pacing
  KEYS[5] stats       hash  lifetime counters
  KEYS[6] migrations  hash  old chat id -> new chat id
  KEYS[7] events      stream  job state changes (includes/events.lua)

  ARGV[1] prefix  key prefix (with the hash tag)
  ARGV[2] config  the static configuration (JSON; the per-chat limits, origin)
  ARGV[3] job_id  job id
  ARGV[4] bulk    '1' = one of many (RetryJobs): no wake (the caller wakes the workers
                  once at the end) and the reply leaves the job out

  Returns {code, state, woke, then unless bulk the job's hash as a flat field/value
  array}: code OK = queued again, WRONG_STATE = not failed (its `state`),
  JOB_NOT_FOUND; woke = 1 when the other replicas were woken.
]]
local failed, waiting, ready, paced, stats, migrations =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local prefix, cfg = ARGV[1], cjson.decode(ARGV[2])
local events = KEYS[7]
local id, bulk = ARGV[3], ARGV[4] == '1'

-- @include states
-- @include codes
-- @include time_ms
-- @include to_waiting
-- @include place_chat
-- @include wake
-- @include job_uploads
-- @include events

local jk = prefix .. 'job:' .. id
local f = redis.call('HMGET', jk, 's', 'ch')
local state, chat = f[1], f[2]
if not state then
  return { JOB_NOT_FOUND, '', 0 }
end
if state ~= FAILED then
  return { WRONG_STATE, state, 0 }
end
local now = time_ms()
chat = redis.call('HGET', migrations, chat) or chat
redis.call('ZREM', failed, id)
redis.call('HSET', jk, 'ch', chat, 'a', 0, 'st', 0, 'due', now)
to_waiting(prefix, waiting, id, chat, now)
emit(events, jk, id, WAITING, now, cfg)
-- Unfinished again: its uploads are pinned again (those not trimmed meanwhile).
pin_uploads(prefix, redis.call('HGET', jk, 'up'))
place_chat(prefix, ready, paced, chat, now, cfg)
redis.call('HINCRBY', stats, 'requeued', 1)
if bulk then
  return { OK, WAITING, 0 }
end
wake(prefix, cfg.origin)
return { OK, WAITING, 1, redis.call('HGETALL', jk) }

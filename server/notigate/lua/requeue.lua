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

  ARGV[1]    key prefix (with the hash tag)
  ARGV[2]    job id
  ARGV[3..7] private rate, private window ms, group rate, group window ms, chat margin ms
  ARGV[8]    optional: '1' = do not wake the workers (RetryJobs wakes them once at the end)

  Returns {code, state}: 1 = queued again, 0 = not failed (its `state`),
  -1 = no such job.
]]
local failed, waiting, ready, paced, stats, migrations =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local prefix = ARGV[1]

-- @include common

local id = ARGV[2]
local jk = prefix .. 'job:' .. id
local f = redis.call('HMGET', jk, 's', 'ch')
local state, chat = f[1], f[2]
if not state then
  return { -1, '' }
end
if state ~= FAILED then
  return { 0, state }
end
local now = time_ms()
chat = redis.call('HGET', migrations, chat) or chat
redis.call('ZREM', failed, id)
redis.call('HSET', jk, 'ch', chat, 'a', 0, 'st', 0, 'due', now)
to_waiting(waiting, id, chat, now)
place_chat(ready, paced, chat, now, limits_from(ARGV, 3))
redis.call('HINCRBY', stats, 'requeued', 1)
if ARGV[8] ~= '1' then
  wake()
end
return { 1, WAITING }

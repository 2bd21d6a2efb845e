#!lua flags=allow-oom
--[[
  Record a delivery: the job becomes completed with Telegram's message id.
  A delivery is a fact, so it is recorded even when the lease was lost (the job
  is then taken out of whatever queue it went back to, so it is not sent again).

  KEYS[1] active      zset  leased job ids
  KEYS[2] completed   zset  completed job ids, score = delivery time (ms)
  KEYS[3] waiting     zset  index of waiting job ids
  KEYS[4] delayed     zset  job ids not yet due
  KEYS[5] failed      zset  failed job ids
  KEYS[6] ready       zset  chats that may send now
  KEYS[7] paced       zset  chats held by pacing
  KEYS[8] stats       hash  lifetime counters
  KEYS[9] migrations  hash  old chat id -> new chat id

  ARGV[1]    key prefix (with the hash tag)
  ARGV[2]    job id
  ARGV[3]    lease token
  ARGV[4]    Telegram message id
  ARGV[5]    completed jobs kept; ARGV[6] their maximum age ms (0 = no limit)
  ARGV[7]    new chat id when the chat was migrated during this send, else ''
  ARGV[8..12] private rate, private window ms, group rate, group window ms, chat margin ms

  Returns 1 = recorded under the caller's lease, 2 = recorded although the lease
  had been lost, 0 = already completed, -1 = no such job.
]]
local active, completed, waiting, delayed, failed, ready, paced, stats, migrations =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local prefix = ARGV[1]

-- @include common

local id, token = ARGV[2], ARGV[3]
local jk = prefix .. 'job:' .. id
local now = time_ms()
local f = redis.call('HMGET', jk, 's', 'tk', 'ch')
local state, chat = f[1], f[3]
if not state then
  return -1
end
if state == 'completed' then
  return 0
end
local result = 1
if not (state == 'active' and f[2] == token) then
  result = 2
end
redis.call('ZREM', active, id)
redis.call('ZREM', delayed, id)
redis.call('ZREM', failed, id)
if redis.call('ZREM', waiting, id) == 1 then
  redis.call('ZREM', prefix .. 'q:' .. chat, id)
  place_chat(ready, paced, chat, now, limits_from(ARGV, 8))
end
local new_chat = ARGV[7]
if new_chat ~= '' then
  redis.call('HSET', migrations, chat, new_chat)
  redis.call('HSET', jk, 'ch', new_chat)
end
redis.call('HSET', jk, 'm', ARGV[4], 'd', now)
finish(completed, jk, id, 'completed', now)
redis.call('HINCRBY', stats, 'sent', 1)
trim(completed, tonumber(ARGV[5]), tonumber(ARGV[6]), now)
return result

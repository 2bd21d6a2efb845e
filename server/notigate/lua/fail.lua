#!lua flags=allow-oom
--[[
  A send failed permanently (403, 400 such as "chat not found"): the job fails
  at once with Telegram's description; no further attempt.

  KEYS[1] active  zset  leased job ids
  KEYS[2] failed  zset  failed job ids, score = time they failed
  KEYS[3] stats   hash  lifetime counters

  ARGV[1] key prefix (with the hash tag)
  ARGV[2] job id
  ARGV[3] lease token
  ARGV[4] error description
  ARGV[5] failed jobs kept; ARGV[6] their maximum age ms (0 = no limit)

  Returns 1 = failed, 0 = ignored (the lease was lost), -1 = no such job.
]]
local active, failed, stats = KEYS[1], KEYS[2], KEYS[3]
local prefix = ARGV[1]

-- @include common

local id, token = ARGV[2], ARGV[3]
local jk = prefix .. 'job:' .. id
if redis.call('EXISTS', jk) == 0 then
  return -1
end
if not leased(jk, token) then
  return 0
end
local now = time_ms()
redis.call('ZREM', active, id)
redis.call('HINCRBY', jk, 'a', 1)
redis.call('HSET', jk, 'e', ARGV[4])
finish(failed, jk, id, FAILED, now)
redis.call('HINCRBY', stats, 'failed', 1)
trim(failed, tonumber(ARGV[5]), tonumber(ARGV[6]), now)
return 1

#!lua flags=allow-oom
--[[
  Cancel a job that has not been handed to Telegram yet (waiting or delayed).

  KEYS[1] waiting    zset  index of waiting job ids
  KEYS[2] delayed    zset  job ids not yet due
  KEYS[3] cancelled  zset  cancelled job ids, score = time (ms)
  KEYS[4] ready      zset  chats that may send now
  KEYS[5] paced      zset  chats held by pacing
  KEYS[6] stats      hash  lifetime counters

  ARGV[1]    key prefix (with the hash tag)
  ARGV[2]    job id
  ARGV[3]    cancelled jobs kept; ARGV[4] their maximum age ms (0 = no limit)
  ARGV[5..9] private rate, private window ms, group rate, group window ms, chat margin ms
  ARGV[10]   optional: the states to cancel from ('w', 'd' or 'wd'; CancelJobs): a job
             in any other state, cancelled included, is left alone with code 0

  Returns {code, state}: 1 = cancelled (or already was: a client retrying a
  cancel whose answer it lost must not get an error), 0 = not cancellable in
  `state`, -1 = no such job.
]]
local waiting, delayed, cancelled, ready, paced, stats =
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
local only = ARGV[10]
if only and only ~= '' and not string.find(only, state, 1, true) then
  return { 0, state }
end
if state == CANCELLED then
  return { 1, state }
end
local now = time_ms()
if state == WAITING then
  redis.call('ZREM', waiting, id)
  redis.call('ZREM', prefix .. 'q:' .. chat, id)
  place_chat(ready, paced, chat, now, limits_from(ARGV, 5))
elseif state == DELAYED then
  redis.call('ZREM', delayed, id)
else
  return { 0, state }
end
finish(cancelled, jk, id, CANCELLED, now)
redis.call('HINCRBY', stats, 'cancelled', 1)
trim(cancelled, tonumber(ARGV[3]), tonumber(ARGV[4]), now)
return { 1, CANCELLED }

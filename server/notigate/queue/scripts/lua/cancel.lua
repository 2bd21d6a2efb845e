#!lua flags=allow-oom
--[[
  Cancel a job that has not been handed to Telegram yet (waiting or delayed).

  KEYS[1] waiting    zset  index of waiting job ids
  KEYS[2] delayed    zset  job ids not yet due
  KEYS[3] cancelled  zset  cancelled job ids, score = time (ms)
  KEYS[4] ready      zset  chats that may send now
  KEYS[5] paced      zset  chats held by pacing
  KEYS[6] stats      hash  lifetime counters
  KEYS[7] events     stream  job state changes (includes/events.lua)

  ARGV[1] prefix  key prefix (with the hash tag)
  ARGV[2] config  the static configuration (JSON; the per-chat limits, keep_completed
                  (cancelled jobs kept), keep_age_ms)
  ARGV[3] job_id  job id
  ARGV[4] only    the states to cancel from ('w', 'd' or 'wd'; CancelJobs): a job in
                  any other state, cancelled included, is left alone (WRONG_STATE);
                  '' = waiting or delayed, and a cancelled job is no error
  ARGV[5] bulk    '1' = one of many (CancelJobs): the reply leaves the job out

  Returns {code, state, then unless bulk the job's hash as a flat field/value array}:
  code OK = cancelled (or already was: a client retrying a cancel whose answer it lost
  must not get an error), WRONG_STATE = not cancellable in `state`, JOB_NOT_FOUND.
]]
local waiting, delayed, cancelled, ready, paced, stats =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local prefix, cfg = ARGV[1], cjson.decode(ARGV[2])
local events = KEYS[7]
local id, only, bulk = ARGV[3], ARGV[4], ARGV[5] == '1'

-- @include states
-- @include codes
-- @include time_ms
-- @include place_chat
-- @include retention
-- @include events

local jk = prefix .. 'job:' .. id
local f = redis.call('HMGET', jk, 's', 'ch')
local state, chat = f[1], f[2]
if not state then
  return { JOB_NOT_FOUND, '' }
end
if only ~= '' and not string.find(only, state, 1, true) then
  return { WRONG_STATE, state }
end
if state ~= CANCELLED then
  local now = time_ms()
  if state == WAITING then
    redis.call('ZREM', waiting, id)
    redis.call('ZREM', prefix .. 'q:' .. chat, id)
    place_chat(prefix, ready, paced, chat, now, cfg)
  elseif state == DELAYED then
    redis.call('ZREM', delayed, id)
  else
    return { WRONG_STATE, state }
  end
  finish(prefix, cancelled, jk, id, CANCELLED, now, cfg)
  emit(events, jk, id, CANCELLED, now, cfg)
  redis.call('HINCRBY', stats, 'cancelled', 1)
  trim(prefix, cancelled, cfg.keep_completed, cfg.keep_age_ms, now)
end
if bulk then
  return { OK, CANCELLED }
end
return { OK, CANCELLED, redis.call('HGETALL', jk) }

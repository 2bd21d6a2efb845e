#!lua flags=allow-oom
--[[
  Give a leased job back for later without using an attempt or pausing its
  chat: an edit or delete whose original's delivery is not recorded yet, or a
  send whose upload another worker is handing to Telegram first.

  KEYS[1] active   zset  leased job ids
  KEYS[2] delayed  zset  job ids not yet due, score = due time (ms)
  KEYS[3] events   stream  job state changes (includes/events.lua)

  ARGV[1] prefix    key prefix (with the hash tag)
  ARGV[2] config    the static configuration (JSON; origin)
  ARGV[3] job_id    job id
  ARGV[4] token     lease token
  ARGV[5] delay_ms  how long to wait before the job is due again

  Returns {code, woke}: code OK, LEASE_LOST or JOB_NOT_FOUND; woke = 1 when the
  other replicas were woken (the job is due before anything else delayed).
]]
local active, delayed = KEYS[1], KEYS[2]
local prefix, cfg = ARGV[1], cjson.decode(ARGV[2])
local events = KEYS[3]
local id, token, delay = ARGV[3], ARGV[4], tonumber(ARGV[5])

-- @include time_ms
-- @include check_lease
-- @include wake
-- @include events

local jk = prefix .. 'job:' .. id
local refused = check_lease(jk, token)
if refused then
  return { refused, 0 }
end
local now = time_ms()
local due = now + delay
local head = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
redis.call('ZREM', active, id)
redis.call('HSET', jk, 's', DELAYED, 'u', now, 'due', due)
redis.call('ZADD', delayed, due, id)
emit(events, jk, id, DELAYED, now, cfg)
if #head == 0 or due < tonumber(head[2]) then
  wake(prefix, cfg.origin)
  return { OK, 1 }
end
return { OK, 0 }

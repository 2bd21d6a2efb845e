#!lua flags=allow-oom
--[[
  A send failed permanently (403, 400 such as "chat not found"): the job fails
  at once with Telegram's description; no further attempt.

  KEYS[1] active  zset  leased job ids
  KEYS[2] failed  zset  failed job ids, score = time they failed
  KEYS[3] stats   hash  lifetime counters
  KEYS[4] events  stream  job state changes (includes/events.lua)

  ARGV[1] prefix  key prefix (with the hash tag)
  ARGV[2] config  the static configuration (JSON; keep_failed, keep_age_ms)
  ARGV[3] job_id  job id
  ARGV[4] token   lease token
  ARGV[5] error   error description

  Returns {OK} = failed, {LEASE_LOST}, {JOB_NOT_FOUND}.
]]
local active, failed, stats = KEYS[1], KEYS[2], KEYS[3]
local prefix, cfg = ARGV[1], cjson.decode(ARGV[2])
local events = KEYS[4]
local id, token, err = ARGV[3], ARGV[4], ARGV[5]

-- @include time_ms
-- @include check_lease
-- @include retention
-- @include events

local jk = prefix .. 'job:' .. id
local refused = check_lease(jk, token)
if refused then
  return { refused }
end
local now = time_ms()
redis.call('ZREM', active, id)
redis.call('HINCRBY', jk, 'a', 1)
redis.call('HSET', jk, 'e', err)
finish(prefix, failed, jk, id, FAILED, now, cfg)
emit(events, jk, id, FAILED, now, cfg, err)
redis.call('HINCRBY', stats, 'failed', 1)
trim(prefix, failed, cfg.keep_failed, cfg.keep_age_ms, now)
return { OK }

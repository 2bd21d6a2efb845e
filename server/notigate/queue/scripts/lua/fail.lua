#!lua flags=allow-oom
--[[
  A send failed permanently (a 400 such as a bad markup, or Telegram's answer that
  the chat cannot be reached): the job fails at once with Telegram's description; no
  further attempt. With `suppress`, the job's chat is suppressed in the same call
  (dequeue.lua then fails later jobs to it without a send).

  KEYS[1] active  zset  leased job ids
  KEYS[2] failed  zset  failed job ids, score = time they failed
  KEYS[3] stats   hash  lifetime counters
  KEYS[4] events  stream  job state changes (includes/events.lua)
  KEYS[5] suppressed          hash  chat -> JSON {r = reason, t = time (ms), j = job id}
  KEYS[6] suppressed_by_time  zset  the suppressed chats, score = time suppressed (ms)

  ARGV[1] prefix  key prefix (with the hash tag)
  ARGV[2] config  the static configuration (JSON; keep_failed, keep_age_ms)
  ARGV[3] job_id  job id
  ARGV[4] token   lease token
  ARGV[5] error   error description
  ARGV[6] suppress  '1': the chat cannot be reached (blocked the bot, not found):
                    suppress it with `error` as the reason (a later suppression of the
                    same chat replaces the earlier one)

  Returns {OK} = failed, {LEASE_LOST}, {JOB_NOT_FOUND}.
]]
local active, failed, stats = KEYS[1], KEYS[2], KEYS[3]
local prefix, cfg = ARGV[1], cjson.decode(ARGV[2])
local events, suppressed, suppressed_by_time = KEYS[4], KEYS[5], KEYS[6]
local id, token, err, suppress = ARGV[3], ARGV[4], ARGV[5], ARGV[6] == '1'

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
if suppress then
  local chat = redis.call('HGET', jk, 'ch')
  if chat then
    redis.call('HSET', suppressed, chat, cjson.encode({ r = err, t = now, j = id }))
    redis.call('ZADD', suppressed_by_time, now, chat)
  end
end
trim(prefix, failed, cfg.keep_failed, cfg.keep_age_ms, now)
return { OK }

#!lua flags=allow-oom
--[[
  Record deliveries: each job becomes completed with Telegram's message id.
  Many deliveries share one call (the workers group-commit them). A delivery
  is a fact, so it is recorded even when the lease was lost (the job is then
  taken out of whatever queue it went back to, so it is not sent again), but
  only on the job that was sent: the caller names it by id and creation time.
  A job of that id created at another time is another job (the store lost its
  data and the id was handed out again): it is left untouched.

  KEYS[1] active      zset  leased job ids
  KEYS[2] completed   zset  completed job ids, score = delivery time (ms)
  KEYS[3] waiting     zset  index of waiting job ids
  KEYS[4] delayed     zset  job ids not yet due
  KEYS[5] failed      zset  failed job ids
  KEYS[6] ready       zset  chats that may send now
  KEYS[7] paced       zset  chats held by pacing
  KEYS[8] stats       hash  lifetime counters
  KEYS[9] events      stream  job state changes (includes/events.lua)

  ARGV[1]   prefix      key prefix (with the hash tag)
  ARGV[2]   config      the static configuration (JSON; the per-chat limits,
                        keep_completed, keep_age_ms)
  ARGV[3..] deliveries  for each delivery: job id, lease token, the job's creation
                        time (ms, as the lease read it), Telegram's message id (an
                        album's ids separated by commas)

  Returns one code per delivery: RECORDED (under the caller's lease), RECORDED_LATE
  (although the lease had been lost: the same job, which may have been sent twice),
  ALREADY_COMPLETED, JOB_NOT_FOUND, OTHER_JOB (the id names another job now:
  nothing recorded).
]]
local active, completed, waiting, delayed, failed, ready, paced, stats =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local prefix, cfg = ARGV[1], cjson.decode(ARGV[2])
local events = KEYS[9]

-- @include states
-- @include codes
-- @include time_ms
-- @include place_chat
-- @include retention
-- @include events

local now = time_ms()
local out = {}
local sent = 0
for base = 3, #ARGV, 4 do
  local id, token = ARGV[base], ARGV[base + 1]
  local jk = prefix .. 'job:' .. id
  local f = redis.call('HMGET', jk, 's', 'tk', 'ch', 'c', 'a', 'k')
  local state, chat = f[1], f[3]
  if not state then
    out[#out + 1] = JOB_NOT_FOUND
  elseif f[4] ~= ARGV[base + 2] then
    out[#out + 1] = OTHER_JOB
  elseif state == COMPLETED then
    out[#out + 1] = ALREADY_COMPLETED
  else
    if state == ACTIVE and f[2] == token then
      out[#out + 1] = RECORDED
    else
      out[#out + 1] = RECORDED_LATE
    end
    redis.call('ZREM', active, id)
    redis.call('ZREM', delayed, id)
    redis.call('ZREM', failed, id)
    if redis.call('ZREM', waiting, id) == 1 then
      redis.call('ZREM', prefix .. 'q:' .. chat, id)
      place_chat(prefix, ready, paced, chat, now, cfg)
    end
    -- One message id, or an album's ids separated by commas (the first kept in m).
    local ids = ARGV[base + 3]
    local comma = string.find(ids, ',', 1, true)
    if comma then
      redis.call('HSET', jk, 'm', string.sub(ids, 1, comma - 1), 'ms', ids, 'd', now)
    else
      redis.call('HSET', jk, 'm', ids, 'd', now)
    end
    finish(prefix, completed, jk, id, COMPLETED, now, cfg)
    append_event(events, id, COMPLETED, now, cfg, chat, f[5], f[6], nil, ids)
    sent = sent + 1
  end
end
if sent > 0 then
  redis.call('HINCRBY', stats, 'sent', sent)
  trim(prefix, completed, cfg.keep_completed, cfg.keep_age_ms, now)
end
return out

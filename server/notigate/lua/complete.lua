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

  ARGV[1]    key prefix (with the hash tag)
  ARGV[2]    completed jobs kept; ARGV[3] their maximum age ms (0 = no limit)
  ARGV[4..8] private rate, private window ms, group rate, group window ms, chat margin ms
  ARGV[9]    n, the number of deliveries; then for each delivery i (0-based), at 10 + 4*i:
             job id, lease token, the job's creation time (ms, as the lease read it),
             Telegram message id

  Returns one code per delivery: 1 = recorded under the caller's lease, 2 = recorded
  although the lease had been lost (same job), 0 = already completed, -1 = no such
  job, -2 = the id names another job now: nothing recorded.
]]
local active, completed, waiting, delayed, failed, ready, paced, stats =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local prefix = ARGV[1]

-- @include common

local keep, age = tonumber(ARGV[2]), tonumber(ARGV[3])
local lim = limits_from(ARGV, 4)
local n = tonumber(ARGV[9])
local now = time_ms()
local out = {}
local sent = 0
for i = 0, n - 1 do
  local base = 10 + 4 * i
  local id, token = ARGV[base], ARGV[base + 1]
  local jk = prefix .. 'job:' .. id
  local f = redis.call('HMGET', jk, 's', 'tk', 'ch', 'c')
  local state, chat = f[1], f[3]
  if not state then
    out[#out + 1] = -1
  elseif f[4] ~= ARGV[base + 2] then
    out[#out + 1] = -2
  elseif state == COMPLETED then
    out[#out + 1] = 0
  else
    if state == ACTIVE and f[2] == token then
      out[#out + 1] = 1
    else
      out[#out + 1] = 2
    end
    redis.call('ZREM', active, id)
    redis.call('ZREM', delayed, id)
    redis.call('ZREM', failed, id)
    if redis.call('ZREM', waiting, id) == 1 then
      redis.call('ZREM', prefix .. 'q:' .. chat, id)
      place_chat(ready, paced, chat, now, lim)
    end
    redis.call('HSET', jk, 'm', ARGV[base + 3], 'd', now)
    finish(completed, jk, id, COMPLETED, now)
    sent = sent + 1
  end
end
if sent > 0 then
  redis.call('HINCRBY', stats, 'sent', sent)
  trim(completed, keep, age, now)
end
return out

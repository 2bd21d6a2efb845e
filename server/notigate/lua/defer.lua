#!lua flags=allow-oom
--[[
  Give a leased job back without using an attempt: after a 429 (the chat is
  paused for retry_after, and the whole bot when 429s come from several chats
  at once), or on shutdown / a rejected token (no pause). The job keeps its
  rank, so it keeps its place among its chat's messages.

  KEYS[1] active   zset    leased job ids
  KEYS[2] waiting  zset    index of waiting job ids
  KEYS[3] ready    zset    chats that may send now
  KEYS[4] paced    zset    chats held by pacing or a pause
  KEYS[5] stats    hash    lifetime counters
  KEYS[6] recent   zset    chats that answered 429 lately, score = time (ms)
  KEYS[7] gpause   string  the whole bot is paused until this time (ms)

  ARGV[1]     key prefix (with the hash tag)
  ARGV[2]     job id
  ARGV[3]     lease token
  ARGV[4]     pause ms for the job's chat (0 = no pause, not a 429)
  ARGV[5]     distinct chats with a 429 within ARGV[6] ms that pause the whole bot
  ARGV[6]     that window (ms)
  ARGV[7..11] private rate, private window ms, group rate, group window ms, chat margin ms

  Returns 1 = given back, 2 = given back and the whole bot paused,
  0 = ignored (the lease was lost), -1 = no such job.
]]
local active, waiting, ready, paced, stats, recent, gpause =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local prefix = ARGV[1]

-- @include common

local id, token = ARGV[2], ARGV[3]
local pause = tonumber(ARGV[4])
local jk = prefix .. 'job:' .. id
if redis.call('EXISTS', jk) == 0 then
  return -1
end
if not leased(jk, token) then
  return 0
end
local now = time_ms()
local chat = redis.call('HGET', jk, 'ch')
redis.call('ZREM', active, id)
local result = 1
if pause > 0 then
  local until_ms = now + pause
  local cp = prefix .. 'cp:' .. chat
  if tonumber(redis.call('GET', cp) or '0') < until_ms then
    redis.call('SET', cp, until_ms, 'PX', pause)
  end
  redis.call('HINCRBY', stats, 'rate_limited', 1)
  redis.call('HSET', jk, 'e', 'rate limited by Telegram for ' .. pause .. ' ms')
  local window = tonumber(ARGV[6])
  redis.call('ZADD', recent, now, chat)
  redis.call('ZREMRANGEBYSCORE', recent, '-inf', now - window)
  redis.call('PEXPIRE', recent, window)
  if redis.call('ZCARD', recent) >= tonumber(ARGV[5]) then
    if tonumber(redis.call('GET', gpause) or '0') < until_ms then
      redis.call('SET', gpause, until_ms, 'PX', pause)
    end
    result = 2
  end
end
to_waiting(waiting, id, chat, now)
place_chat(ready, paced, chat, now, limits_from(ARGV, 7))
if pause == 0 then
  wake()
end
return result

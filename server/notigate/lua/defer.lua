#!lua flags=allow-oom
--[[
  Give a leased job back without using an attempt: after a 429 (the chat is
  paused for its retry_after, in full), or on shutdown / a rejected token (no
  pause). The job keeps its rank, so it keeps its place among its chat's messages.

  The whole bot pauses only on evidence that the limit is the bot's, not the
  chats' own: within the window, either ARGV[5] distinct chats answered 429
  with a short wait (at most ARGV[12] ms: the bot-wide limit of about 30
  messages/s asks for seconds), or ARGV[13] distinct chats answered 429 with
  any wait (everything is refused: a flood across the bot). A long wait from a
  few chats is those chats' flood wait and pauses only them. The bot-wide
  pause lasts until the earliest of those chats may send again, and never
  longer than ARGV[12] ms.

  KEYS[1] active   zset    leased job ids
  KEYS[2] waiting  zset    index of waiting job ids
  KEYS[3] ready    zset    chats that may send now
  KEYS[4] paced    zset    chats held by pacing or a pause
  KEYS[5] stats    hash    lifetime counters
  KEYS[6] recent   zset    chats that answered 429 lately, score = time (ms)
  KEYS[7] gpause   string  the whole bot is paused until this time (ms)
  KEYS[8] gwhy     string  why the whole bot is paused (same expiry as gpause)

  ARGV[1]     key prefix (with the hash tag)
  ARGV[2]     job id
  ARGV[3]     lease token
  ARGV[4]     pause ms for the job's chat (0 = no pause, not a 429)
  ARGV[5]     distinct chats with a short 429 within ARGV[6] ms that pause the whole bot
  ARGV[6]     that window (ms)
  ARGV[7..11] private rate, private window ms, group rate, group window ms, chat margin ms
  ARGV[12]    longest bot-wide pause (ms); longer waits are not counted as short
  ARGV[13]    distinct chats with a 429 of any length within the window that pause the bot

  Returns {1, 0} = given back, {2, ms} = given back and the whole bot paused
  for ms, 0 = ignored (the lease was lost), -1 = no such job.
]]
local active, waiting, ready, paced, stats, recent, gpause, gwhy =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
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
local bot_ms = 0
if pause > 0 then
  local until_ms = now + pause
  local cp = prefix .. 'cp:' .. chat
  if tonumber(redis.call('GET', cp) or '0') < until_ms then
    redis.call('SET', cp, until_ms, 'PX', pause)
  end
  redis.call('HINCRBY', stats, 'rate_limited', 1)
  redis.call('HSET', jk, 'e', 'rate limited by Telegram for ' .. pause .. ' ms')
  local window = tonumber(ARGV[6])
  local max_ms = tonumber(ARGV[12])
  redis.call('ZADD', recent, now, chat)
  redis.call('ZREMRANGEBYSCORE', recent, '-inf', now - window)
  redis.call('PEXPIRE', recent, window)
  -- Each chat's own pause tells how long it was asked to wait; one whose pause
  -- already ended was asked for less than the window, i.e. a short wait.
  local chats = redis.call('ZRANGE', recent, 0, -1)
  local short, earliest = 0, now + max_ms
  for _, c in ipairs(chats) do
    local open = tonumber(redis.call('GET', prefix .. 'cp:' .. c) or '0')
    if open <= now + max_ms then
      short = short + 1
    end
    if open > now and open < earliest then
      earliest = open
    end
  end
  local why = nil
  if pause <= max_ms and short >= tonumber(ARGV[5]) then
    why = '429 from ' .. short .. ' chats within ' .. window .. ' ms with short waits'
      .. ' (the bot-wide limit)'
  elseif #chats >= tonumber(ARGV[13]) then
    why = '429 from ' .. #chats .. ' chats within ' .. window .. ' ms'
      .. ' (a flood across the bot; pause capped at ' .. max_ms .. ' ms)'
  end
  if why ~= nil and earliest > now then
    if tonumber(redis.call('GET', gpause) or '0') < earliest then
      redis.call('SET', gpause, earliest, 'PX', earliest - now)
      redis.call('SET', gwhy, why, 'PX', earliest - now)
    end
    bot_ms = earliest - now
  end
end
to_waiting(waiting, id, chat, now)
place_chat(ready, paced, chat, now, limits_from(ARGV, 7))
if pause == 0 then
  wake()
end
if bot_ms > 0 then
  return {2, bot_ms}
end
return {1, 0}

#!lua flags=allow-oom
--[[
  Give a leased job back without using an attempt: after a 429 (the chat is
  paused for its retry_after, in full), or on shutdown / a rejected token (no
  pause). The job keeps its rank, so it keeps its place among its chat's messages.

  The whole bot pauses only on evidence that the limit is the bot's, not the
  chats' own: within cfg.bot_pause_window_ms, either cfg.bot_pause_chats distinct
  chats answered 429 with a short wait (at most cfg.bot_pause_max_ms: the bot-wide
  limit of about 30 messages/s asks for seconds), or cfg.bot_pause_flood_chats
  distinct chats answered 429 with any wait (everything is refused: a flood across
  the bot). A long wait from a few chats is those chats' flood wait and pauses only
  them. The bot-wide pause lasts until the earliest of those chats may send again,
  and never longer than cfg.bot_pause_max_ms.

  KEYS[1] active               zset    leased job ids
  KEYS[2] waiting              zset    index of waiting job ids
  KEYS[3] ready                zset    chats that may send now
  KEYS[4] paced                zset    chats held by pacing or a pause
  KEYS[5] stats                hash    lifetime counters
  KEYS[6] recent_429s          zset    chats that answered 429 lately, score = time (ms)
  KEYS[7] global_pause         string  the whole bot is paused until this time (ms)
  KEYS[8] global_pause_reason  string  why the whole bot is paused (same expiry)
  KEYS[9] events               stream  job state changes (includes/events.lua)

  ARGV[1] prefix    key prefix (with the hash tag)
  ARGV[2] config    the static configuration (JSON; the per-chat limits, bot_pause_*,
                    origin)
  ARGV[3] job_id    job id
  ARGV[4] token     lease token
  ARGV[5] pause_ms  pause for the job's chat (ms; 0 = no pause, not a 429)

  Returns {code, bot_pause_ms, woke}: code GIVEN_BACK, BOT_PAUSED (the whole bot
  is paused for bot_pause_ms), LEASE_LOST or JOB_NOT_FOUND; woke = 1 when the
  other replicas were woken (a job given back without a pause is due now).
]]
local active, waiting, ready, paced, stats, recent, gpause, gwhy =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local prefix, cfg = ARGV[1], cjson.decode(ARGV[2])
local events = KEYS[9]
local id, token, pause = ARGV[3], ARGV[4], tonumber(ARGV[5])

-- @include time_ms
-- @include check_lease
-- @include to_waiting
-- @include place_chat
-- @include wake
-- @include events

local jk = prefix .. 'job:' .. id
local refused = check_lease(jk, token)
if refused then
  return { refused, 0, 0 }
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
  local window = cfg.bot_pause_window_ms
  local max_ms = cfg.bot_pause_max_ms
  redis.call('ZADD', recent, now, chat)
  redis.call('ZREMRANGEBYSCORE', recent, '-inf', now - window)
  redis.call('PEXPIRE', recent, window)
  -- Each chat's own pause tells how long it was asked to wait; one whose pause
  -- already ended was asked for less than the window, i.e. a short wait.
  local chats = redis.call('ZRANGE', recent, 0, -1)
  local short, soonest = 0, now + max_ms
  for _, c in ipairs(chats) do
    local open = tonumber(redis.call('GET', prefix .. 'cp:' .. c) or '0')
    if open <= now + max_ms then
      short = short + 1
    end
    if open > now and open < soonest then
      soonest = open
    end
  end
  local why = nil
  if pause <= max_ms and short >= cfg.bot_pause_chats then
    why = '429 from ' .. short .. ' chats within ' .. window .. ' ms with short waits'
      .. ' (the bot-wide limit)'
  elseif #chats >= cfg.bot_pause_flood_chats then
    why = '429 from ' .. #chats .. ' chats within ' .. window .. ' ms'
      .. ' (a flood across the bot; pause capped at ' .. max_ms .. ' ms)'
  end
  if why ~= nil and soonest > now then
    if tonumber(redis.call('GET', gpause) or '0') < soonest then
      redis.call('SET', gpause, soonest, 'PX', soonest - now)
      redis.call('SET', gwhy, why, 'PX', soonest - now)
    end
    bot_ms = soonest - now
  end
end
to_waiting(prefix, waiting, id, chat, now)
emit(events, jk, id, WAITING, now, cfg)
place_chat(prefix, ready, paced, chat, now, cfg)
local woke = 0
if pause == 0 then
  wake(prefix, cfg.origin)
  woke = 1
end
if bot_ms > 0 then
  return { BOT_PAUSED, bot_ms, woke }
end
return { GIVEN_BACK, 0, woke }

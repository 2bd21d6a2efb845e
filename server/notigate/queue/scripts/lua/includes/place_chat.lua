-- @include chat_limit
-- @include window

-- Put `chat` in `ready` (scored by its most urgent job) when it may send now,
-- in `paced` (scored by when it may send) when its window or a 429 pause
-- holds it back, or in neither when it has nothing queued. Idempotent.
-- Invariant of every script: a chat with queued jobs is in exactly one of ready and paced.
local function place_chat(prefix, ready, paced, chat, now, cfg)
  local head = redis.call('ZRANGE', prefix .. 'q:' .. chat, 0, 0, 'WITHSCORES')
  if #head == 0 then
    redis.call('ZREM', ready, chat)
    redis.call('ZREM', paced, chat)
    return
  end
  local rate, window = chat_limit(chat, cfg)
  local open = window_open_at(prefix .. 'w:' .. chat, rate, window, cfg.chat_margin_ms)
  local pause = tonumber(redis.call('GET', prefix .. 'cp:' .. chat) or '0')
  if pause > open then
    open = pause
  end
  if open > now then
    redis.call('ZREM', ready, chat)
    redis.call('ZADD', paced, open, chat)
  else
    redis.call('ZREM', paced, chat)
    redis.call('ZADD', ready, head[2], chat)
  end
end

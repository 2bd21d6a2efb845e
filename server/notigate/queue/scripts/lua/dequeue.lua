#!lua flags=allow-oom
--[[
  Lease up to `count` jobs that may be sent now, honouring priority, the
  bot-wide limit, per-chat pacing and pauses; first promote what has become
  due (delayed jobs, paced chats) and return expired leases to their queues.

  KEYS[1] ready         zset    chats that may send now, score = rank of their head job
  KEYS[2] paced         zset    chats held by pacing or a pause, score = time they open (ms)
  KEYS[3] delayed       zset    job ids not yet due, score = due time (ms)
  KEYS[4] active        zset    leased job ids, score = lease expiry (ms)
  KEYS[5] waiting       zset    index of waiting job ids, score = time they became waiting
  KEYS[6] global_log    list    bot-wide recent send times (ms), newest first
  KEYS[7] global_pause  string  the whole bot is paused until this time (ms)
  KEYS[8] stats         hash    lifetime counters
  KEYS[9] failed        zset    failed job ids, score = time they failed
  KEYS[10] global_tat   string  bot-wide spacing: theoretical time of the next send (ms, GCRA)
  KEYS[11] events       stream  job state changes (includes/events.lua)
  KEYS[12] suppressed   hash    chats messages are not sent to: chat -> JSON {r = reason,
                                t, j} (fail.lua)

  ARGV[1] prefix  key prefix (with the hash tag)
  ARGV[2] config  the static configuration (JSON): lease_ms; bot_rate sends per
                  bot_window_ms plus bot_margin_ms; bot_burst_ms (bot-wide sends are
                  also spaced evenly (GCRA): at most as many as fit in this span at the
                  bot-wide rate may go back to back); the per-chat limits; max_stalls
                  (stalls allowed before a job fails); keep_failed, keep_age_ms;
                  promote_batch (the most entries promoted per set in one call, and
                  the most jobs of suppressed chats failed in one call: bounds the
                  script's run time)
  ARGV[3] count   the most jobs to lease
  ARGV[4] nonce   random, new for every call: the lease tokens are "<nonce>:<n>"

  Returns {wait_ms, blocked, n, then per job: id, lease token, chat id, attempts,
  creation time (ms), payload, kind ('' = send, 'e' edit, 'r' delete), album items
  already sent, edit method, the target's state letter and message ids (edit and
  delete jobs; '' otherwise)}, and last how many jobs failed because their chat is
  suppressed.

  A job leased for a suppressed chat fails here instead ("suppressed: <reason>"),
  unless it was sent with ignore_suppression (field 'is'): no send is recorded in any
  window, so it uses no rate-limit slot, and leasing goes on with the next chat.

  Why tokens from a nonce and not a per-job counter: a counter starts again when the
  store loses its data, so a lease taken before the loss could match one taken after,
  on whatever job then holds the id. A nonce-based token is unique across the life of
  the store and beyond it.
  wait_ms: 0 = more may be leased now; > 0 = the next event (slot, pacing, due
  job, lease expiry) is that far away; -1 = nothing is scheduled.
  blocked: 1 when the bot-wide limit or pause stopped the leasing (a new job could
  not be sent before wait_ms either), else 0.

  Why spacing: leasing a whole window at once (30 sends in a few ms, then a
  second of silence) makes an urgent message that arrives in the silence wait
  for the next window; evenly spaced sends bound its wait to one interval, and
  keep replicas from putting bursts on the wire together. The spacing forgives
  a few ms of lateness (a worker's timer never fires exactly on time) so that
  lateness does not add up into a lower rate; the sliding window stays the
  hard limit.
]]
local ready, paced, delayed, active, waiting, glog, gpause, stats, failed, gtat_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local prefix, cfg = ARGV[1], cjson.decode(ARGV[2])
local events, suppressed = KEYS[11], KEYS[12]
local count, nonce = tonumber(ARGV[3]), ARGV[4]

-- @include states
-- @include time_ms
-- @include chat_limit
-- @include window
-- @include place_chat
-- @include to_waiting
-- @include retention
-- @include events

local grate, gwindow, gmargin = cfg.bot_rate, cfg.bot_window_ms, cfg.bot_margin_ms
local batch = cfg.promote_batch
local interval = (gwindow + gmargin) / grate
local burst = math.max(1, math.floor(cfg.bot_burst_ms / interval))
local tolerance = (burst - 1) * interval
local catch_up = math.min(interval, 5)
local now = time_ms()
local touched = {}
local dropped = 0
-- Most queues suppress no chat: one look here saves one per job leased.
local any_suppressed = redis.call('EXISTS', suppressed) == 1
trim_events(events, now, cfg)

for _, id in ipairs(redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, batch)) do
  redis.call('ZREM', delayed, id)
  local chat = redis.call('HGET', prefix .. 'job:' .. id, 'ch')
  if chat then
    to_waiting(prefix, waiting, id, chat, now)
    emit(events, prefix .. 'job:' .. id, id, WAITING, now, cfg)
    touched[chat] = true
  end
end

for _, id in ipairs(redis.call('ZRANGEBYSCORE', active, '-inf', now, 'LIMIT', 0, batch)) do
  redis.call('ZREM', active, id)
  local jk = prefix .. 'job:' .. id
  local chat = redis.call('HGET', jk, 'ch')
  if chat then
    local stalls = redis.call('HINCRBY', jk, 'st', 1)
    redis.call('HINCRBY', stats, 'stalled', 1)
    if stalls > cfg.max_stalls then
      local why = 'stalled: the lease expired ' .. stalls .. ' times without an outcome'
      redis.call('HSET', jk, 'e', why)
      finish(prefix, failed, jk, id, FAILED, now, cfg)
      emit(events, jk, id, FAILED, now, cfg, why)
      redis.call('HINCRBY', stats, 'failed', 1)
      trim(prefix, failed, cfg.keep_failed, cfg.keep_age_ms, now)
    else
      to_waiting(prefix, waiting, id, chat, now)
      emit(events, jk, id, WAITING, now, cfg)
      touched[chat] = true
    end
  end
end

for _, chat in ipairs(redis.call('ZRANGEBYSCORE', paced, '-inf', now, 'LIMIT', 0, batch)) do
  touched[chat] = true
end
for chat in pairs(touched) do
  place_chat(prefix, ready, paced, chat, now, cfg)
end

local out = { 0, 0, 0 }
local tat = tonumber(redis.call('GET', gtat_key) or '0')
local taken = 0
local next_at = math.huge
local paused = tonumber(redis.call('GET', gpause) or '0')
if paused > now then
  next_at = paused
  out[2] = 1
else
  while taken < count and dropped < batch do
    local gopen = math.max(window_open_at(glog, grate, gwindow, gmargin), tat - tolerance)
    if gopen > now then
      next_at = gopen
      out[2] = 1
      break
    end
    local top = redis.call('ZPOPMIN', ready)
    if #top == 0 then
      break
    end
    local chat = top[1]
    local chat_log = prefix .. 'w:' .. chat
    local head = redis.call('ZPOPMIN', prefix .. 'q:' .. chat)
    local held = false
    if #head > 0 then
      local id = head[1]
      local jk = prefix .. 'job:' .. id
      local rate, window = chat_limit(chat, cfg)
      -- An album of n counts as n messages (Telegram counts them so): the windows
      -- must have room for all of them (place_chat only made room for one).
      -- One read of everything the lease returns (a held album reads it for nothing).
      local f = redis.call('HMGET', jk, 'n', 'a', 'c', 'p', 'k', 'sk', 'em', 'tg', 'tm', 'is')
      local n = tonumber(f[1] or '1')
      local why = any_suppressed and f[10] ~= '1' and redis.call('HGET', suppressed, chat)
      if why then
        -- The chat cannot be reached: no request, no slot. (held stays false: the chat
        -- is placed again below for its next job.)
        local err = 'suppressed: ' .. cjson.decode(why).r
        redis.call('ZREM', waiting, id)
        redis.call('HSET', jk, 'e', err)
        finish(prefix, failed, jk, id, FAILED, now, cfg)
        append_event(events, id, FAILED, now, cfg, chat, f[2], f[5], err)
        redis.call('HINCRBY', stats, 'failed', 1)
        redis.call('HINCRBY', stats, 'suppressed', 1)
        trim(prefix, failed, cfg.keep_failed, cfg.keep_age_ms, now)
        dropped = dropped + 1
      elseif n > 1 then
        local bot_open = window_open_at(glog, grate, gwindow, gmargin, n)
        local chat_open = window_open_at(chat_log, rate, window, cfg.chat_margin_ms, n)
        if bot_open > now or chat_open > now then
          redis.call('ZADD', prefix .. 'q:' .. chat, head[2], id)
          held = true
          if bot_open > now then
            redis.call('ZADD', ready, top[2], chat)
            next_at = bot_open
            out[2] = 1
            break
          end
          redis.call('ZADD', paced, chat_open, chat)
        end
      end
      if not held and not why then
        record_send(glog, grate, gwindow, gmargin, now, n)
        tat = math.max(tat, now - catch_up) + interval * n
        record_send(chat_log, rate, window, cfg.chat_margin_ms, now, n)
        redis.call('ZREM', waiting, id)
        local token = nonce .. ':' .. taken
        redis.call('HSET', jk, 's', ACTIVE, 'u', now, 'tk', token)
        redis.call('ZADD', active, now + cfg.lease_ms, id)
        append_event(events, id, ACTIVE, now, cfg, chat, f[2], f[5])
        -- Edit and delete jobs: the target's message ids as last recorded, and its
        -- state (the edit must wait for the original's delivery to be recorded).
        local target_state, target_ids = '', f[9] or ''
        if f[8] then
          local t = redis.call('HMGET', prefix .. 'job:' .. f[8], 's', 'm', 'ms')
          target_state = t[1] or ''
          if target_ids == '' then
            target_ids = t[3] or t[2] or ''
          end
        end
        out[#out + 1] = id
        out[#out + 1] = token
        out[#out + 1] = chat
        out[#out + 1] = f[2] or 0
        out[#out + 1] = f[3] or 0
        out[#out + 1] = f[4]
        out[#out + 1] = f[5] or ''
        out[#out + 1] = f[6] or 0
        out[#out + 1] = f[7] or ''
        out[#out + 1] = target_state
        out[#out + 1] = target_ids
        taken = taken + 1
      end
    end
    if not held then
      place_chat(prefix, ready, paced, chat, now, cfg)
    end
  end
end
out[3] = taken
out[#out + 1] = dropped
if taken > 0 then
  redis.call('SET', gtat_key, tostring(tat), 'PX', gwindow + gmargin)
end

if next_at == math.huge and redis.call('ZCARD', ready) > 0 then
  next_at = now
end
for _, z in ipairs({ paced, delayed, active }) do
  local head = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
  if #head > 0 and tonumber(head[2]) < next_at then
    next_at = tonumber(head[2])
  end
end
if next_at == math.huge then
  out[1] = -1
elseif next_at <= now then
  out[1] = 0
else
  out[1] = math.ceil(next_at - now)
end
return out

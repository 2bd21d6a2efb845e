-- The event stream: one entry per job state change, appended by the script that makes
-- the change, so there is no change without its event and no event without its change
-- (notigate.events reads them). Fields: j job id, s state letter, t time (ms), c chat,
-- a attempts, and where they apply k kind, e error, m message id, ms an album's ids.
-- Kept to cfg.events_max entries (approximately: whole stream nodes go at once);
-- cfg.events_max 0 turns the stream off.

-- Job `id` for `chat`, with `attempts` used and of `kind` ('' = send), entered `state` at
-- `now`; `err` is why an attempt failed, `ids` Telegram's message ids on delivery (an
-- album's separated by commas); nil when they do not apply. For the scripts that have
-- just read these fields themselves (the hot paths: enqueue, lease, completion).
local function append_event(events, id, state, now, cfg, chat, attempts, kind, err, ids)
  if cfg.events_max == 0 then
    return
  end
  local entry = { 'j', id, 's', state, 't', now, 'c', chat or '', 'a', attempts or '0' }
  if kind and kind ~= '' then
    entry[#entry + 1] = 'k'
    entry[#entry + 1] = kind
  end
  if err then
    entry[#entry + 1] = 'e'
    entry[#entry + 1] = err
  end
  if ids then
    local comma = string.find(ids, ',', 1, true)
    entry[#entry + 1] = 'm'
    entry[#entry + 1] = comma and string.sub(ids, 1, comma - 1) or ids
    if comma then
      entry[#entry + 1] = 'ms'
      entry[#entry + 1] = ids
    end
  end
  redis.call('XADD', events, 'MAXLEN', '~', cfg.events_max, '*', unpack(entry))
end

-- Job `id` (hash `jk`) entered `state` at `now`; `err` is why an attempt failed (nil
-- when none did). Reads the rest from the job's hash. (A completion carries message
-- ids: complete.lua, the one script that completes jobs, appends with append_event.)
local function emit(events, jk, id, state, now, cfg, err)
  if cfg.events_max == 0 then
    return
  end
  local f = redis.call('HMGET', jk, 'ch', 'a', 'k')
  append_event(events, id, state, now, cfg, f[1], f[2], f[3], err)
end

-- Events older than cfg.events_max_age_ms go (whole stream nodes at once; called once
-- per dequeue, which every gateway runs while it delivers).
local function trim_events(events, now, cfg)
  if cfg.events_max > 0 then
    redis.call('XTRIM', events, 'MINID', '~', string.format('%d', now - cfg.events_max_age_ms))
  end
end

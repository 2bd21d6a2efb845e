-- @include states
-- The event stream: one entry per job state change, appended by the script that makes
-- the change, so there is no change without its event and no event without its change
-- (notigate.events reads them). Fields: j job id, s state letter, t time (ms), c chat,
-- a attempts, and where they apply k kind, e error, m message id, ms an album's ids.
-- Kept to cfg.events_max entries (approximately: whole stream nodes go at once);
-- cfg.events_max 0 turns the stream off.

-- Job `id` (hash `jk`) entered `state` at `now`; `err` is why an attempt failed (nil
-- when none did).
local function emit(events, jk, id, state, now, cfg, err)
  if cfg.events_max == 0 then
    return
  end
  local f = redis.call('HMGET', jk, 'ch', 'a', 'k', 'm', 'ms')
  local entry = { 'j', id, 's', state, 't', now, 'c', f[1] or '', 'a', f[2] or '0' }
  if f[3] then
    entry[#entry + 1] = 'k'
    entry[#entry + 1] = f[3]
  end
  if err then
    entry[#entry + 1] = 'e'
    entry[#entry + 1] = err
  end
  if state == COMPLETED then
    entry[#entry + 1] = 'm'
    entry[#entry + 1] = f[4] or '0'
    if f[5] then
      entry[#entry + 1] = 'ms'
      entry[#entry + 1] = f[5]
    end
  end
  redis.call('XADD', events, 'MAXLEN', '~', cfg.events_max, '*', unpack(entry))
end

-- Events older than cfg.events_max_age_ms go (whole stream nodes at once; called once
-- per dequeue, which every gateway runs while it delivers).
local function trim_events(events, now, cfg)
  if cfg.events_max > 0 then
    redis.call('XTRIM', events, 'MINID', '~', string.format('%d', now - cfg.events_max_age_ms))
  end
end

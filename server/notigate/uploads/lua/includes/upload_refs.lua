-- Uploads sent by jobs, for the queue's scripts: a job that sends an upload pins it
-- when it is stored and releases it when it finishes (or is dropped), so an upload
-- is never trimmed while a job may still send it, and is kept `ttl_ms` after the
-- last one. Self-contained: the key names and the 'r' (ready) state are those of
-- notigate.uploads.keys.

-- Pin upload `id` for one more job. Returns false when there is no upload ready to
-- send by that id (never made, still uploading, or trimmed): the job must not be
-- stored then.
local function pin_upload(prefix, id)
  local hk = prefix .. 'up:' .. id
  if redis.call('HGET', hk, 'st') ~= 'r' then
    return false
  end
  redis.call('HINCRBY', hk, 'refs', 1)
  redis.call('ZADD', prefix .. 'uploads', '+inf', id)
  return true
end

-- A job that pinned upload `id` finished: once no unfinished job uses it, it may be
-- trimmed `ttl_ms` after `now`. A release without a pin leaves refs at 0 (absent).
local function release_upload(prefix, id, now, ttl_ms)
  local hk = prefix .. 'up:' .. id
  if redis.call('EXISTS', hk) == 0 then
    return
  end
  if redis.call('HINCRBY', hk, 'refs', -1) <= 0 then
    redis.call('HDEL', hk, 'refs')
    redis.call('ZADD', prefix .. 'uploads', now + ttl_ms, id)
  end
end

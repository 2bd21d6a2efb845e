-- Uploads referenced by unfinished jobs (the job hash's `up` field: upload ids
-- separated by spaces). An upload with references is never trimmed (score +inf in
-- `uploads`); when its last reference goes it is kept cfg.upload_ttl_ms more, so a
-- failed job retried later still finds it. An upload already trimmed is left alone.

local function pin_uploads(prefix, ids)
  for id in string.gmatch(ids or '', '%S+') do
    local uk = prefix .. 'up:' .. id
    if redis.call('EXISTS', uk) == 1 then
      redis.call('HINCRBY', uk, 'refs', 1)
      redis.call('ZADD', prefix .. 'uploads', '+inf', id)
    end
  end
end

local function release_uploads(prefix, ids, now, ttl_ms)
  for id in string.gmatch(ids or '', '%S+') do
    local uk = prefix .. 'up:' .. id
    if redis.call('EXISTS', uk) == 1 and redis.call('HINCRBY', uk, 'refs', -1) <= 0 then
      redis.call('HDEL', uk, 'refs')
      redis.call('ZADD', prefix .. 'uploads', now + ttl_ms, id)
    end
  end
end

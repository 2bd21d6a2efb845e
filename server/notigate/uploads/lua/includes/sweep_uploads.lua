-- @include drop_upload

-- Trim at most `limit` uploads whose time in the zset `uploads` has come (score <=
-- `now`), giving their bytes back to `held`. Expiry is kept here, not in Redis TTLs,
-- so that `held` stays exact. An upload still pinned (refs > 0) is kept and scored
-- +inf again: a trim time must never outrun a job that may send it. Returns the
-- number trimmed.
local function sweep_uploads(prefix, uploads, held, now, limit)
  local due = redis.call('ZRANGE', uploads, '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
  local trimmed = 0
  for _, id in ipairs(due) do
    local refs = tonumber(redis.call('HGET', prefix .. 'up:' .. id, 'refs') or '0')
    if refs > 0 then
      redis.call('ZADD', uploads, '+inf', id)
    else
      drop_upload(prefix, uploads, held, id)
      trimmed = trimmed + 1
    end
  end
  return trimmed
end

-- How long (ms) until the next upload in `uploads` may be trimmed, or '' when none
-- ever will be (there is none, or every one is pinned).
local function trim_wait(uploads, now)
  local head = redis.call('ZRANGE', uploads, '-inf', '(+inf', 'BYSCORE', 'LIMIT', 0, 1,
    'WITHSCORES')
  if #head == 0 then
    return ''
  end
  return math.max(0, tonumber(head[2]) - now)
end

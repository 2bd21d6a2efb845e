-- Finished jobs: their state set once, and the retention zsets that keep them.
-- @include job_uploads

-- Job `id` (hash `jk`) ends in `state`, indexed in `zset` by the time it ended; the
-- uploads it referenced are released (an unfinished job pins them).
local function finish(prefix, zset, jk, id, state, now, cfg)
  redis.call('HSET', jk, 's', state, 'u', now)
  redis.call('ZADD', zset, now, id)
  local up = redis.call('HGET', jk, 'up')
  if up then
    release_uploads(prefix, up, now, cfg.upload_ttl_ms)
  end
end

-- Delete a finished job's hash and its entry in its chat's index (jc:<chat>).
local function forget(prefix, id)
  local jk = prefix .. 'job:' .. id
  local chat = redis.call('HGET', jk, 'ch')
  if chat then
    redis.call('ZREM', prefix .. 'jc:' .. chat, id)
  end
  redis.call('DEL', jk)
end

-- Keep at most `keep` entries and none older than `age` ms (0 = no limit) in a
-- retention zset (scored by finish time), deleting the trimmed jobs.
local function trim(prefix, zset, keep, age, now)
  local n = redis.call('ZCARD', zset)
  if n > keep then
    local old = redis.call('ZRANGE', zset, 0, n - keep - 1)
    for _, id in ipairs(old) do
      forget(prefix, id)
    end
    redis.call('ZREMRANGEBYRANK', zset, 0, n - keep - 1)
  end
  if age > 0 then
    local expired = redis.call('ZRANGEBYSCORE', zset, '-inf', now - age, 'LIMIT', 0, 100)
    for _, id in ipairs(expired) do
      forget(prefix, id)
      redis.call('ZREM', zset, id)
    end
  end
end

-- @include states
-- @include job_rank

-- Move job `id` into `chat`'s queue as waiting, keeping its original rank.
local function to_waiting(prefix, waiting, id, chat, now)
  local jk = prefix .. 'job:' .. id
  local f = redis.call('HMGET', jk, 'pr', 'r')
  -- 'r' is the rank as stored by versions that kept it in the hash.
  local rank = f[2] or job_rank(tonumber(f[1] or '0'), id)
  redis.call('ZADD', prefix .. 'q:' .. chat, rank, id)
  redis.call('ZADD', waiting, now, id)
  redis.call('HSET', jk, 's', WAITING, 'u', now)
end

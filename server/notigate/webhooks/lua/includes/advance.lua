-- Job `job`'s first pending event is done with (acknowledged or given up): it leaves
-- the outbox, and the job's next event is due now, or the job leaves the due set.
local function advance(prefix, outbox, times, due, tries, job, now)
  local list = prefix .. 'wh:job:' .. job
  local cursor = redis.call('LPOP', list)
  if cursor then
    redis.call('HDEL', outbox, cursor)
    redis.call('ZREM', times, cursor)
  end
  redis.call('HDEL', tries, job)
  if redis.call('LLEN', list) > 0 then
    redis.call('ZADD', due, now, job)
  else
    redis.call('ZREM', due, job)
  end
end

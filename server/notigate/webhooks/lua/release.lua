#!lua flags=allow-oom
--[[
  Give leases back: a sender stopping with POSTs unanswered makes their jobs due now
  (the receiver may have them already: it may get them twice) instead of at the end
  of their leases. A job no longer due (done with) stays so.

  KEYS[1] due     zset  job id -> when its first pending event is due (ms)

  ARGV[1] prefix  key prefix (with the hash tag)
  ARGV[2] config  the webhook policy (JSON)
  ARGV[3..] jobs  the jobs' ids

  Returns OK.
]]
local due = KEYS[1]

-- @include codes
-- @include queue:time_ms

local now = time_ms()
for i = 3, #ARGV do
  redis.call('ZADD', due, 'XX', 'LT', now, ARGV[i])
end
return OK

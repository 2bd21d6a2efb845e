#!lua flags=allow-oom
--[[
  Renew the leases of jobs still being sent, so a slow send is not mistaken
  for a dead worker.

  KEYS[1] active  zset  leased job ids, score = lease expiry (ms)

  ARGV[1] key prefix (with the hash tag)
  ARGV[2] lease ms
  ARGV[3..] pairs of job id, lease token

  Returns the number of leases renewed (a lost lease is not renewed).
]]
local active = KEYS[1]
local prefix = ARGV[1]

-- @include common

local lease = tonumber(ARGV[2])
local now = time_ms()
local renewed = 0
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  if leased(prefix .. 'job:' .. id, ARGV[i + 1]) then
    redis.call('ZADD', active, 'XX', now + lease, id)
    renewed = renewed + 1
  end
end
return renewed

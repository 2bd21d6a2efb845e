#!lua flags=allow-oom
--[[
  Renew the leases of jobs still being sent, so a slow send is not mistaken
  for a dead worker.

  KEYS[1] active  zset  leased job ids, score = lease expiry (ms)

  ARGV[1]    prefix  key prefix (with the hash tag)
  ARGV[2]    config  the static configuration (JSON; lease_ms)
  ARGV[3..]  leases  pairs of job id, lease token

  Returns the number of leases renewed (a lost lease is not renewed).
]]
local active = KEYS[1]
local prefix, cfg = ARGV[1], cjson.decode(ARGV[2])

-- @include time_ms
-- @include check_lease

local now = time_ms()
local renewed = 0
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  if not check_lease(prefix .. 'job:' .. id, ARGV[i + 1]) then
    redis.call('ZADD', active, 'XX', now + cfg.lease_ms, id)
    renewed = renewed + 1
  end
end
return renewed

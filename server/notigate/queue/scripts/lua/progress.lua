--[[
  Record how many items of an album Telegram has sent (it answered "failed to
  send message #k": the items before k are in the chat), so that no later
  attempt sends them again. The lease is kept; the caller then records the
  outcome as for any send.

  KEYS: none but the job's own hash (under the prefix).

  ARGV[1] prefix  key prefix (with the hash tag)
  ARGV[2] config  the static configuration (JSON; unused)
  ARGV[3] job_id  job id
  ARGV[4] token   lease token
  ARGV[5] sent    items sent so far, counted from the album's first

  Returns {code}: OK, LEASE_LOST or JOB_NOT_FOUND.
]]
local prefix = ARGV[1]
local id, token, sent = ARGV[3], ARGV[4], tonumber(ARGV[5])

-- @include check_lease

local jk = prefix .. 'job:' .. id
local refused = check_lease(jk, token)
if refused then
  return { refused }
end
if sent > tonumber(redis.call('HGET', jk, 'sk') or '0') then
  redis.call('HSET', jk, 'sk', sent)
end
return { OK }

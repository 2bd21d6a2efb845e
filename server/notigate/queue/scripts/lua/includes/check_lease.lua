-- @include states
-- @include codes

-- Whether `token` still holds the lease on the job whose hash is `jk`: nil when
-- it does, else the error code (JOB_NOT_FOUND, LEASE_LOST). A worker whose lease
-- expired (and whose job may be leased again elsewhere) must not decide the job's
-- fate. Tokens are unique across the life of the store (dequeue.lua), so a token
-- matches only the job, and the lease, it was minted for: never a job that took
-- over the id after the store lost its data.
local function check_lease(jk, token)
  local f = redis.call('HMGET', jk, 's', 'tk')
  if not f[1] then
    return JOB_NOT_FOUND
  end
  if f[1] ~= ACTIVE or f[2] ~= token then
    return LEASE_LOST
  end
  return nil
end

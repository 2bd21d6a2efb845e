--[[
  Replace the content of a message: a queued job's payload in place (so only
  the new content is ever sent), or, once sent, the payload that records what
  the chat shows now (later edits start from it). Compare-and-set: `expected`
  is the payload the caller's edit was computed from; another edit that landed
  in between makes it refuse (CHANGED) and the caller starts again.

  KEYS: none but the job's own hash (under the prefix).

  ARGV[1] prefix    key prefix (with the hash tag)
  ARGV[2] config    the static configuration (JSON; upload_ttl_ms)
  ARGV[3] job_id    job id
  ARGV[4] states    state letters in which the job may be rewritten
  ARGV[5] expected  the payload the edit was computed from
  ARGV[6] payload   the new payload
  ARGV[7] uploads   upload ids the new payload references ('' = none); a queued
                    job pins them in place of the old ones (a leased one keeps its
                    pins until it finishes: its worker may be reading them)

  Returns {code, state}: OK, JOB_NOT_FOUND, WRONG_STATE (state is the job's),
  CHANGED (the payload is not `expected` any more).
]]
local prefix, cfg = ARGV[1], cjson.decode(ARGV[2])
local id, states, expected, payload, uploads = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]

-- @include states
-- @include codes
-- @include time_ms
-- @include job_uploads

local jk = prefix .. 'job:' .. id
local f = redis.call('HMGET', jk, 's', 'p', 'up')
local state = f[1]
if not state then
  return { JOB_NOT_FOUND, '' }
end
if not string.find(states, state, 1, true) then
  return { WRONG_STATE, state }
end
if f[2] ~= expected then
  return { CHANGED, state }
end
redis.call('HSET', jk, 'p', payload)
if state == WAITING or state == DELAYED then
  pin_uploads(prefix, uploads)
  release_uploads(prefix, f[3], time_ms(), cfg.upload_ttl_ms)
  if uploads ~= '' then
    redis.call('HSET', jk, 'up', uploads)
  else
    redis.call('HDEL', jk, 'up')
  end
end
return { OK, state }

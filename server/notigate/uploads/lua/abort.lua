#!lua flags=allow-oom
--[[
  Drop an upload and give its bytes back: a stream that failed, or ended before
  its client learnt the id. One that jobs use is kept.

  KEYS[1] uploads       zset    upload id -> when it may be trimmed (ms)
  KEYS[2] upload_bytes  string  bytes held by every upload, complete or partial

  ARGV[1] prefix        key prefix (with the hash tag)
  ARGV[2] config        the limits (JSON; none is read)
  ARGV[3] id            the upload's id

  Returns {code, freed}: OK (dropped, `freed` bytes given back); NOT_FOUND; PINNED
  (a job uses it: kept).
]]
local uploads, held = KEYS[1], KEYS[2]
local prefix = ARGV[1]
local id = ARGV[3]

-- @include codes
-- @include drop_upload

local f = redis.call('HMGET', prefix .. 'up:' .. id, 'st', 'refs')
if not f[1] then
  return { NOT_FOUND, 0 }
end
if tonumber(f[2] or '0') > 0 then
  return { PINNED, 0 }
end
return { OK, drop_upload(prefix, uploads, held, id) }

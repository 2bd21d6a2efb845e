#!lua flags=allow-oom
--[[
  Trim uploads whose time has come (the other scripts trim a few on their way).

  KEYS[1] uploads       zset    upload id -> when it may be trimmed (ms)
  KEYS[2] upload_bytes  string  bytes held by every upload, complete or partial

  ARGV[1] prefix        key prefix (with the hash tag)
  ARGV[2] config        the limits (JSON; none is read)
  ARGV[3] now           the time (ms); '' = Redis's clock
  ARGV[4] limit         the most uploads to trim

  Returns {trimmed, held}: how many were trimmed, and the bytes held after.
]]
local uploads, held = KEYS[1], KEYS[2]
local prefix = ARGV[1]

-- @include clock
-- @include sweep_uploads

local trimmed = sweep_uploads(prefix, uploads, held, now_ms(ARGV[3]), tonumber(ARGV[4]))
return { trimmed, tonumber(redis.call('GET', held) or '0') }

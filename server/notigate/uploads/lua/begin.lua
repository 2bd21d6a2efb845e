#!lua
--[[
  Start an upload: its hash, uploading and holding no bytes yet; it is trimmed
  unless its stream goes on within partial_ttl_ms.

  KEYS[1] uploads       zset    upload id -> when it may be trimmed (ms)
  KEYS[2] upload_bytes  string  bytes held by every upload, complete or partial

  ARGV[1] prefix        key prefix (with the hash tag)
  ARGV[2] config        the limits (JSON: budget_bytes, partial_ttl_ms, sweep_batch)
  ARGV[3] id            the new upload's id
  ARGV[4] filename      the name Telegram shows
  ARGV[5] content_type  MIME type, '' = none given
  ARGV[6] size          the declared size (bytes)
  ARGV[7] now           the time (ms); '' = Redis's clock

  Returns {code, held, wait}: OK; ID_TAKEN (an upload has this id already);
  OVER_BUDGET when `size` cannot fit in what the budget has left now (`held` bytes
  are held; the next upload may be trimmed in `wait` ms, '' = none will be).
  Refusing early spares a client streaming a file that cannot be kept; the bytes
  themselves are reserved as they come (append.lua).
]]
local uploads, held = KEYS[1], KEYS[2]
local prefix, cfg = ARGV[1], cjson.decode(ARGV[2])
local id, filename, content_type, size = ARGV[3], ARGV[4], ARGV[5], ARGV[6]

-- @include codes
-- @include upload_states
-- @include clock
-- @include sweep_uploads

local now = now_ms(ARGV[7])
sweep_uploads(prefix, uploads, held, now, cfg.sweep_batch)
local hk = prefix .. 'up:' .. id
if redis.call('EXISTS', hk) == 1 then
  return { ID_TAKEN }
end
local bytes = tonumber(redis.call('GET', held) or '0')
if bytes + tonumber(size) > cfg.budget_bytes then
  return { OVER_BUDGET, bytes, trim_wait(uploads, now) }
end
redis.call('HSET', hk, 'fn', filename, 'ct', content_type, 'sz', size, 'rx', 0,
  'st', UPLOADING, 'nc', 0, 'c', now)
redis.call('ZADD', uploads, now + cfg.partial_ttl_ms, id)
return { OK }

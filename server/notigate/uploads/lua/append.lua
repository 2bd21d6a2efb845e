#!lua
--[[
  Add the next bytes of an upload, reserved against the budget in the same step:
  of two uploads racing for the budget's last bytes, only one gets them.

  KEYS[1] uploads       zset    upload id -> when it may be trimmed (ms)
  KEYS[2] upload_bytes  string  bytes held by every upload, complete or partial

  ARGV[1] prefix        key prefix (with the hash tag)
  ARGV[2] config        the limits (JSON: budget_bytes, partial_ttl_ms, sweep_batch)
  ARGV[3] id            the upload's id
  ARGV[4] now           the time (ms); '' = Redis's clock
  ARGV[5..] chunks      the bytes, in order, each at most chunk_bytes

  Returns {code, a, b}: OK (a = bytes received so far); NOT_FOUND (no such upload:
  aborted, or trimmed after its stream stalled); WRONG_STATE (complete already).
  TOO_LONG (more bytes than declared; a = the declared size) and OVER_BUDGET
  (a = bytes held after the drop, b = ms until the next trim, or '') drop the
  upload: it cannot complete, and nothing of these chunks is stored.
]]
local uploads, held = KEYS[1], KEYS[2]
local prefix, cfg = ARGV[1], cjson.decode(ARGV[2])
local id = ARGV[3]

-- @include codes
-- @include upload_states
-- @include clock
-- @include sweep_uploads

local now = now_ms(ARGV[4])
sweep_uploads(prefix, uploads, held, now, cfg.sweep_batch)
local hk = prefix .. 'up:' .. id
local f = redis.call('HMGET', hk, 'st', 'sz', 'rx')
if not f[1] then
  return { NOT_FOUND }
end
if f[1] ~= UPLOADING then
  return { WRONG_STATE }
end
if #ARGV < 5 then
  return { OK, tonumber(f[3]) }
end
local n = 0
for i = 5, #ARGV do
  n = n + #ARGV[i]
end
local size, rx = tonumber(f[2]), tonumber(f[3]) + n
if rx > size then
  drop_upload(prefix, uploads, held, id)
  return { TOO_LONG, size }
end
if tonumber(redis.call('GET', held) or '0') + n > cfg.budget_bytes then
  drop_upload(prefix, uploads, held, id)
  local after = tonumber(redis.call('GET', held) or '0')
  return { OVER_BUDGET, after, trim_wait(uploads, now) }
end
redis.call('RPUSH', hk .. ':d', unpack(ARGV, 5))
redis.call('HSET', hk, 'rx', rx)
redis.call('HINCRBY', hk, 'nc', #ARGV - 4)
redis.call('INCRBY', held, n)
redis.call('ZADD', uploads, now + cfg.partial_ttl_ms, id)
return { OK, rx }

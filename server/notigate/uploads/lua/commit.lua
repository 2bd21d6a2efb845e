#!lua flags=allow-oom
--[[
  Complete an upload: every declared byte came, so it is ready to send, and kept
  ttl_ms unless a job pins it meanwhile (upload_refs.lua). It may run when Redis
  is out of memory: it adds a digest to a file already held.

  KEYS[1] uploads       zset    upload id -> when it may be trimmed (ms)
  KEYS[2] upload_bytes  string  bytes held by every upload, complete or partial

  ARGV[1] prefix        key prefix (with the hash tag)
  ARGV[2] config        the limits (JSON: ttl_ms, sweep_batch)
  ARGV[3] id            the upload's id
  ARGV[4] sha256        the content's digest, lowercase hex
  ARGV[5] now           the time (ms); '' = Redis's clock

  Returns {code, a, b}: OK (a = the upload's hash as a flat field/value array); NOT_FOUND (aborted, or trimmed
  after its stream stalled); WRONG_STATE (complete already); SIZE_MISMATCH (fewer
  bytes than declared: a = declared, b = received) drops the upload.
]]
local uploads, held = KEYS[1], KEYS[2]
local prefix, cfg = ARGV[1], cjson.decode(ARGV[2])
local id, sha256 = ARGV[3], ARGV[4]

-- @include codes
-- @include upload_states
-- @include clock
-- @include sweep_uploads

local now = now_ms(ARGV[5])
sweep_uploads(prefix, uploads, held, now, cfg.sweep_batch)
local hk = prefix .. 'up:' .. id
local f = redis.call('HMGET', hk, 'st', 'sz', 'rx')
if not f[1] then
  return { NOT_FOUND }
end
if f[1] ~= UPLOADING then
  return { WRONG_STATE }
end
if tonumber(f[2]) ~= tonumber(f[3]) then
  drop_upload(prefix, uploads, held, id)
  return { SIZE_MISMATCH, tonumber(f[2]), tonumber(f[3]) }
end
redis.call('HSET', hk, 'st', READY, 'sha', sha256)
redis.call('ZADD', uploads, now + cfg.ttl_ms, id)
return { OK, redis.call('HGETALL', hk) }

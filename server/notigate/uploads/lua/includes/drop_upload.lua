-- Delete upload `id` (its hash, its chunks, its entry in the zset `uploads`) and give
-- the bytes it held back to the counter `held`. Returns those bytes (0 when it was
-- not there). UNLINK: a 50 MB list is freed off the main thread.
local function drop_upload(prefix, uploads, held, id)
  local hk = prefix .. 'up:' .. id
  local rx = tonumber(redis.call('HGET', hk, 'rx') or '0')
  redis.call('UNLINK', hk, hk .. ':d')
  redis.call('ZREM', uploads, id)
  if rx > 0 then
    redis.call('DECRBY', held, rx)
  end
  return rx
end

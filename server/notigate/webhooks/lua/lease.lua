#!lua flags=allow-oom
--[[
  Lease up to `count` due jobs: each is re-scored to the end of its lease (a sender
  that dies leaves it due again then: the one way an event is posted twice) and its
  first pending event returned. Only a job's first event is ever out, so a job's
  events reach the receiver in order.

  KEYS[1] outbox  hash  cursor -> the event's fields (JSON)
  KEYS[2] times   zset  cursor -> the event's time (ms)
  KEYS[3] due     zset  job id -> when its first pending event is due (ms)
  KEYS[4] tries   hash  job id -> failed attempts of its first pending event

  ARGV[1] prefix  key prefix (with the hash tag)
  ARGV[2] config  the webhook policy (JSON: lease_ms)
  ARGV[3] count   jobs to lease at most

  Returns {wait, job, cursor, fields, tries, job, cursor, ...}: wait = ms until the next
  job not leased now is due (-1: none is pending).
]]
local outbox, times, due, tries = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, cfg = ARGV[1], cjson.decode(ARGV[2])
local count = tonumber(ARGV[3])

-- @include codes
-- @include queue:time_ms
-- @include advance

local now = time_ms()
local out = { -1 }
for _, job in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, count)) do
  local cursor = redis.call('LINDEX', prefix .. 'wh:job:' .. job, 0)
  local fields = cursor and redis.call('HGET', outbox, cursor)
  if fields then
    redis.call('ZADD', due, now + cfg.lease_ms, job)
    out[#out + 1] = job
    out[#out + 1] = cursor
    out[#out + 1] = fields
    out[#out + 1] = tonumber(redis.call('HGET', tries, job) or '0')
  else
    -- A head without its event cannot be sent: skip past it (never written so).
    advance(prefix, outbox, times, due, tries, job, now)
  end
end
local nxt = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
if nxt[1] then
  out[1] = math.max(0, tonumber(nxt[2]) - now)
end
return out

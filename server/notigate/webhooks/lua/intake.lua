#!lua flags=allow-oom
--[[
  Take the next events of the stream into the outbox: read up to `count` entries
  through the webhook's group, store each one in a wanted state and queue it behind
  its job's earlier ones (a job with none becomes due now), and acknowledge all of
  them, in one step: an entry is either unread or stored, whatever crashes.
  Entries trimmed from the stream before the group read them are counted
  undeliverable (with one record of their range). A group that vanished with its
  stream (the store lost its data) is created again, reading what the stream holds.

  KEYS[1] events   stream  the queue's events
  KEYS[2] outbox   hash    cursor -> the event's fields (JSON)
  KEYS[3] times    zset    cursor -> the event's time (ms)
  KEYS[4] due      zset    job id -> when its first pending event is due (ms)
  KEYS[5] state    hash    read, delivered, undeliverable
  KEYS[6] dead     list    the newest undeliverable events (JSON)

  ARGV[1] prefix   key prefix (with the hash tag)
  ARGV[2] config   the webhook policy (JSON: wanted, dead_max)
  ARGV[3] count    entries to read at most

  Returns {read, stored, last, trimmed, after, before, pending}: entries read and
  stored, the stream's newest cursor, the number of entries trimmed unread, which came
  after cursor `after` and before cursor `before` ('' when the stream is empty), and
  the events in the outbox now.
]]
local events, outbox, times, due, state, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local prefix, cfg = ARGV[1], cjson.decode(ARGV[2])
local count = tonumber(ARGV[3])

-- @include codes
-- @include queue:time_ms
-- @include group
-- @include undeliverable

local now = time_ms()
local group = group_info(events)
if not group then
  join_group(events, state, '0')
  group = group_info(events)
end
local info = stream_info(events)
local added = info['entries-added']
local first = added - info['length']
local read = tonumber(redis.call('HGET', state, 'read') or first)
if read > added then
  -- Counted in a stream that was replaced since: the group reads what this one holds.
  read = first
end
local trimmed, after, before = 0, group['last-delivered-id'], ''
if info['first-entry'] then
  before = info['first-entry'][1]
end
if read < first then
  trimmed = first - read
  undeliverable(state, dead, cfg.dead_max, trimmed, cjson.encode({
    trimmed = trimmed, after = after, before = before, at = now,
  }))
  read = first
end

local reply = redis.call('XREADGROUP', 'GROUP', GROUP, GROUP, 'COUNT', count, 'STREAMS', events, '>')
local entries = reply and reply[1][2] or {}
local ids, stored = {}, 0
for _, entry in ipairs(entries) do
  local cursor, flat = entry[1], entry[2]
  ids[#ids + 1] = cursor
  local fields = {}
  for i = 1, #flat, 2 do
    fields[flat[i]] = flat[i + 1]
  end
  if fields.s and string.find(cfg.wanted, fields.s, 1, true) then
    redis.call('HSET', outbox, cursor, cjson.encode(fields))
    redis.call('ZADD', times, fields.t or now, cursor)
    if redis.call('RPUSH', prefix .. 'wh:job:' .. fields.j, cursor) == 1 then
      redis.call('ZADD', due, now, fields.j)
    end
    stored = stored + 1
  end
end
if #ids > 0 then
  redis.call('XACK', events, GROUP, unpack(ids))
end
redis.call('HSET', state, 'read', read + #ids)
return {
  #ids, stored, info['last-generated-id'], trimmed, after, before, redis.call('HLEN', outbox),
}

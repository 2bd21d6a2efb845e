#!lua flags=allow-oom
--[[
  Join the event stream: create the webhook's consumer group at the stream's end, so
  that events from now on are posted, unless it exists already (another replica, an
  earlier run: it goes on from where it was).

  KEYS[1] events  stream  the queue's events
  KEYS[2] state   hash    read (entries read or found trimmed), delivered, undeliverable

  ARGV[1] prefix  key prefix (with the hash tag)
  ARGV[2] config  the webhook policy (JSON)

  Returns OK, or JOINED when it created the group.
]]
local events, state = KEYS[1], KEYS[2]

-- @include codes
-- @include group

if group_info(events) then
  if redis.call('HEXISTS', state, 'read') == 0 then
    -- A group without its count (written by something else): count from what the
    -- stream holds, which is what the group reads next at the earliest.
    local info = stream_info(events)
    redis.call('HSET', state, 'read', info['entries-added'] - info['length'])
  end
  return OK
end
join_group(events, state, '$')
return JOINED

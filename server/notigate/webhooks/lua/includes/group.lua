-- The consumer group the webhook reads the event stream with, and the count beside it:
-- `read` in the state hash is how many of the stream's entries, counting from its
-- first ever (XINFO STREAM's entries-added; the stream is trimmed, never XDELed),
-- the group has read or found trimmed. Entries before the first one still held,
-- entries-added - length, that were not read are the ones trimmed unread.
local GROUP = 'webhooks'

-- XINFO STREAM as a table (length, entries-added, first-entry, last-generated-id...).
local function stream_info(events)
  local flat = redis.call('XINFO', 'STREAM', events)
  local info = {}
  for i = 1, #flat, 2 do
    info[flat[i]] = flat[i + 1]
  end
  return info
end

-- The group's XINFO GROUPS row as a table, or nil when the stream or the group is missing.
local function group_info(events)
  if redis.call('EXISTS', events) == 0 then
    return nil
  end
  for _, row in ipairs(redis.call('XINFO', 'GROUPS', events)) do
    local g = {}
    for i = 1, #row, 2 do
      g[row[i]] = row[i + 1]
    end
    if g['name'] == GROUP then
      return g
    end
  end
  return nil
end

-- Create the group at `start` ('$': only entries added later are read; '0': every
-- entry the stream holds) with the count to match.
local function join_group(events, state, start)
  redis.call('XGROUP', 'CREATE', events, GROUP, start, 'MKSTREAM')
  local info = stream_info(events)
  local read = info['entries-added']
  if start == '0' then
    read = read - info['length']
  end
  redis.call('HSET', state, 'read', read)
end

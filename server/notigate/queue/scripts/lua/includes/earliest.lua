-- The earliest time (ms) anything is due: `now` when a chat is ready, else the
-- lowest score among the heads of the zsets `timed` (math.huge: nothing).
local function earliest(ready, timed, now)
  if redis.call('ZCARD', ready) > 0 then
    return now
  end
  local e = math.huge
  for _, z in ipairs(timed) do
    local head = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
    if #head > 0 and tonumber(head[2]) < e then
      e = tonumber(head[2])
    end
  end
  return e
end

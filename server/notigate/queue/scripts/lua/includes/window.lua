-- A sliding window over a newest-first list `log` of send times (ms).

-- Earliest time (ms) at which `log` may take one more send without exceeding
-- `rate` sends in any `window` ms.
local function window_open_at(log, rate, window, margin)
  if redis.call('LLEN', log) < rate then
    return 0
  end
  local oldest = tonumber(redis.call('LINDEX', log, rate - 1))
  return oldest + window + margin
end

local function record_send(log, rate, window, margin, now)
  redis.call('LPUSH', log, now)
  redis.call('LTRIM', log, 0, rate - 1)
  redis.call('PEXPIRE', log, window + margin + 1000)
end

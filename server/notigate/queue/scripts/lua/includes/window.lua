-- A sliding window over a newest-first list `log` of send times (ms).

-- Earliest time (ms) at which `log` may take `n` (default 1) more sends without
-- exceeding `rate` sends in any `window` ms; more than `rate` at once need an empty
-- window (record_send counts the excess as sent in later windows).
local function window_open_at(log, rate, window, margin, n)
  local need = math.min(n or 1, rate)
  local len = redis.call('LLEN', log)
  if len <= rate - need then
    return 0
  end
  local oldest = tonumber(redis.call('LINDEX', log, math.min(rate - need, len - 1)))
  return oldest + window + margin
end

-- Record `n` (default 1) sends at `now`. Sends beyond `rate` fall in later windows:
-- send k (from 0) counts at now + floor(k / rate) windows, so an album of 10 to a
-- chat allowed 1 message a second holds it for 10 seconds, as Telegram counts it.
local function record_send(log, rate, window, margin, now, n)
  n = n or 1
  if n == 1 then
    redis.call('LPUSH', log, now)
  else
    for k = 0, n - 1 do
      redis.call('LPUSH', log, now + math.floor(k / rate) * (window + margin))
    end
  end
  redis.call('LTRIM', log, 0, rate - 1)
  local last = now + math.floor((n - 1) / rate) * (window + margin)
  redis.call('PEXPIRE', log, last - now + window + margin + 1000)
end

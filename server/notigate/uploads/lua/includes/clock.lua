-- The time (ms) the caller passed (tests drive time so), or Redis's clock, the one
-- every replica shares, when it passed ''.
local function now_ms(given)
  if given ~= '' then
    return tonumber(given)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

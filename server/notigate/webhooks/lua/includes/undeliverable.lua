-- Record `n` undeliverable events described by `record` (JSON): counted, and the
-- record kept in the dead list, which holds the newest cfg.dead_max.
local function undeliverable(state, dead, dead_max, n, record)
  redis.call('HINCRBY', state, 'undeliverable', n)
  redis.call('LPUSH', dead, record)
  redis.call('LTRIM', dead, 0, dead_max - 1)
end

-- Keyset paging of a zset (list.lua, select.lua).

-- Byte order (memcmp); Lua's own < on strings follows the server's locale.
local function bytes_before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x < y
    end
  end
  return #a < #b
end

-- The rank (in the `desc` or ascending order) of the first entry after the entry
-- `id` that had `score`, whether or not that entry is still there. A member that
-- stays in the zset is visited exactly once by a walk, however many others enter
-- or leave it between pages.
local function keyset_start(index, score, id, desc)
  local current = redis.call('ZSCORE', index, id)
  if current and tonumber(current) == tonumber(score) then
    return 1 + redis.call(desc and 'ZREVRANK' or 'ZRANK', index, id)
  end
  -- The cursor's entry left (or its score changed): count what sorts before where
  -- it was. Only ids of exactly its score need a comparison.
  local ties = redis.call('ZRANGE', index, score, score, 'BYSCORE')
  local start
  if desc then
    start = redis.call('ZCOUNT', index, '(' .. score, '+inf')
  else
    start = redis.call('ZCOUNT', index, '-inf', '(' .. score)
  end
  for _, m in ipairs(ties) do
    -- Before the cursor: a smaller id going up, a greater one going down.
    if (desc and bytes_before(id, m)) or (not desc and bytes_before(m, id)) then
      start = start + 1
    end
  end
  return start
end

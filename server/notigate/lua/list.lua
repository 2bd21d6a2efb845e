#!lua flags=no-writes,allow-oom
--[[
  One page of a state's index, continuing after the last job of the previous page
  (keyset pagination: a job that stays in the state is listed exactly once, however
  many others enter or leave it between pages).

  KEYS[1] index   zset   the state's job ids (score: a time in ms, see queue.py)

  ARGV[1] key prefix (with the hash tag)
  ARGV[2] limit: the most jobs to return
  ARGV[3] '1' = highest score first, '0' = lowest first
  ARGV[4] score of the previous page's last job ('' = from the start)
  ARGV[5] id of the previous page's last job

  Returns {more, then per job: id, score, its hash as a flat field/value array}:
  more = 1 when jobs follow this page. Ids of equal score are in byte order, as Redis
  orders them.
]]
local index = KEYS[1]
local prefix = ARGV[1]
local limit = tonumber(ARGV[2])
local desc = ARGV[3] == '1'
local start = 0

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

if ARGV[4] ~= '' then
  local score, id = ARGV[4], ARGV[5]
  local current = redis.call('ZSCORE', index, id)
  if current and tonumber(current) == tonumber(score) then
    start = 1 + redis.call(desc and 'ZREVRANK' or 'ZRANK', index, id)
  else
    -- The cursor's job left the state (or its score changed): count what sorts
    -- before where it was. Only ids of exactly its score need a comparison.
    local ties = redis.call('ZRANGE', index, score, score, 'BYSCORE')
    if desc then
      start = redis.call('ZCOUNT', index, '(' .. score, '+inf')
    else
      start = redis.call('ZCOUNT', index, '-inf', '(' .. score)
    end
    for _, m in ipairs(ties) do
      -- Listed before the cursor: a smaller id going up, a greater one going down.
      if (desc and bytes_before(id, m)) or (not desc and bytes_before(m, id)) then
        start = start + 1
      end
    end
  end
end

local page
if desc then
  page = redis.call('ZRANGE', index, start, start + limit - 1, 'REV', 'WITHSCORES')
else
  page = redis.call('ZRANGE', index, start, start + limit - 1, 'WITHSCORES')
end
local out = { 0 }
if start + #page / 2 < redis.call('ZCARD', index) then
  out[1] = 1
end
for i = 1, #page, 2 do
  out[#out + 1] = page[i]
  out[#out + 1] = page[i + 1]
  out[#out + 1] = redis.call('HGETALL', prefix .. 'job:' .. page[i])
end
return out

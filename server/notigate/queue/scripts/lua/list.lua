#!lua flags=no-writes,allow-oom
--[[
  One page of a state's index, continuing after the last job of the previous page
  (keyset pagination: a job that stays in the state is listed exactly once, however
  many others enter or leave it between pages).

  KEYS[1] index   zset   the state's job ids (score: a time in ms, see queue.py)

  ARGV[1] prefix       key prefix (with the hash tag)
  ARGV[2] config       the static configuration (not read here)
  ARGV[3] limit        the most jobs to return
  ARGV[4] desc         '1' = highest score first, '0' = lowest first
  ARGV[5] after_score  score of the previous page's last job ('' = from the start)
  ARGV[6] after_id     id of the previous page's last job

  Returns {more, then per job: id, score, its hash as a flat field/value array}:
  more = 1 when jobs follow this page. Ids of equal score are in byte order, as Redis
  orders them.
]]
local index = KEYS[1]
local prefix = ARGV[1]
local limit = tonumber(ARGV[3])
local desc = ARGV[4] == '1'

-- @include keyset

local start = 0
if ARGV[5] ~= '' then
  start = keyset_start(index, ARGV[5], ARGV[6], desc)
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

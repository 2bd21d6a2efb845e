#!lua flags=allow-oom
--[[
  One step of SearchJobs: the next `limit` entries of an index, highest score (newest)
  first, continuing after the previous step's last entry (keyset paging, as list.lua
  does), and the jobs among them that may match.

  KEYS[1] index  zset  a state's job ids, or a chat's (jc:<chat>, score: the job's number)

  ARGV[1] prefix    key prefix (with the hash tag)
  ARGV[2] config    the static configuration (not read here)
  ARGV[3] limit     the most index entries examined
  ARGV[4] after_score  score of the previous step's last entry ('' = from the start)
  ARGV[5] after_id  id of the previous step's last entry
  ARGV[6] chat      '' when the index is a state's; else the chat whose index it is: an
                    entry whose job is gone or goes to another chat now is stale, and is
                    removed (the one write of this script)
  ARGV[7] needle    '' = every job; else only jobs whose payload, lowercased (ASCII),
                    holds it: a prefilter, the caller checks the decoded text
  ARGV[8..] extra   byte strings that let a job through too (characters whose case
                    folding yields ASCII, which the lowercased payload misses)

  Returns {more, last id, last score, examined, then per job: id, score, how many
  entries were examined up to and including it, its hash as HGETALL's flat array}:
  more = 1 when entries follow this step; last id/score are the step's last entry
  ('' when the step is empty).
]]
local index = KEYS[1]
local prefix = ARGV[1]
local limit = tonumber(ARGV[3])
local chat, needle = ARGV[6], ARGV[7]

-- @include keyset

local start = 0
if ARGV[4] ~= '' then
  start = keyset_start(index, ARGV[4], ARGV[5], true)
end
local page = redis.call('ZRANGE', index, start, start + limit - 1, 'REV', 'WITHSCORES')
local out = { 0, '', '', #page / 2 }
if start + #page / 2 < redis.call('ZCARD', index) then
  out[1] = 1
end
if #page > 0 then
  out[2], out[3] = page[#page - 1], page[#page]
end

local function may_match(payload)
  if needle == '' or string.find(string.lower(payload), needle, 1, true) then
    return true
  end
  for i = 8, #ARGV do
    if string.find(payload, ARGV[i], 1, true) then
      return true
    end
  end
  return false
end

local stale = {}
for i = 1, #page, 2 do
  local id = page[i]
  local jk = prefix .. 'job:' .. id
  local f = redis.call('HMGET', jk, 'ch', 'p')
  if not f[1] or (chat ~= '' and f[1] ~= chat) then
    stale[#stale + 1] = id
  elseif may_match(f[2] or '') then
    out[#out + 1] = id
    out[#out + 1] = page[i + 1]
    out[#out + 1] = (i + 1) / 2
    out[#out + 1] = redis.call('HGETALL', jk)
  end
end
if chat ~= '' and #stale > 0 then
  redis.call('ZREM', index, unpack(stale))
end
return out

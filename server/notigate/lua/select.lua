#!lua flags=no-writes,allow-oom
--[[
  One page of a state's index for RetryJobs/CancelJobs: the jobs among the next
  `limit` entries (lowest score first, continuing after the previous page's last
  entry, as list.lua does) that belong to a chat, or all of them.

  A job belongs to chat C when C is its current chat (`ch`) or the chat it was sent
  to (the SendRequest's chat_id, which differs after C migrated to a supergroup).

  KEYS[1] index       zset  the state's job ids
  KEYS[2] migrations  hash  old chat id -> new chat id

  ARGV[1] key prefix (with the hash tag)
  ARGV[2] limit: the most index entries examined
  ARGV[3] score of the previous page's last entry ('' = from the start)
  ARGV[4] id of the previous page's last entry
  ARGV[5] chat id ('' = every job)

  Returns {more, last id, last score, then per candidate: id, payload}: more = 1 when
  entries follow this page; last id/score are the page's last entry (the next page's
  cursor; '' when the page is empty). payload is '' when the job matches for sure, and
  the serialized SendRequest when the job's current chat is the one `chat` migrated
  to: only its requested chat_id tells, and the caller reads it.
]]
local index, migrations = KEYS[1], KEYS[2]
local prefix = ARGV[1]
local limit = tonumber(ARGV[2])
local chat = ARGV[5]

-- @include common

local start = 0
if ARGV[3] ~= '' then
  start = keyset_start(index, ARGV[3], ARGV[4], false)
end
local page = redis.call('ZRANGE', index, start, start + limit - 1, 'WITHSCORES')
local out = { 0, '', '' }
if start + #page / 2 < redis.call('ZCARD', index) then
  out[1] = 1
end
if #page > 0 then
  out[2], out[3] = page[#page - 1], page[#page]
end
local moved_to = chat ~= '' and redis.call('HGET', migrations, chat)
for i = 1, #page, 2 do
  local id = page[i]
  if chat == '' then
    out[#out + 1] = id
    out[#out + 1] = ''
  else
    local current = redis.call('HGET', prefix .. 'job:' .. id, 'ch')
    if current == chat then
      out[#out + 1] = id
      out[#out + 1] = ''
    elseif moved_to and current == moved_to then
      out[#out + 1] = id
      out[#out + 1] = redis.call('HGET', prefix .. 'job:' .. id, 'p')
    end
  end
end
return out

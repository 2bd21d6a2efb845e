#!lua flags=no-writes,allow-oom
--[[
  One page of a state's index for RetryJobs/CancelJobs: the jobs among the next
  `limit` entries (lowest score first, continuing after the previous page's last
  entry, as list.lua does) that belong to a chat, or all of them.

  A job belongs to chat C when C is its current chat (`ch`) or the chat it was sent
  to (the SendRequest's chat_id, which differs after C migrated to a supergroup).

  KEYS[1] index       zset  the state's job ids
  KEYS[2] migrations  hash  old chat id -> new chat id

  ARGV[1] prefix       key prefix (with the hash tag)
  ARGV[2] config       the static configuration (not read here)
  ARGV[3] limit        the most index entries examined
  ARGV[4] after_score  score of the previous page's last entry ('' = from the start)
  ARGV[5] after_id     id of the previous page's last entry
  ARGV[6] chat         chat id ('' = every job)
  ARGV[7] sample       0 = list every sure match; k > 0 = only count them and list the
                       k smallest ids (by their number) (validate_only: parsing a long reply is most of a
                       page's cost in the client)

  Returns {more, last id, last score, matched, n, then n ids, then pairs of id, payload}:
  more = 1 when entries follow this page; last id/score are the page's last entry (the
  next page's cursor; '' when the page is empty). `matched` jobs match for sure, n of
  them are listed. A pair is a job whose current chat is the one `chat` migrated to: only
  its requested chat_id (in the payload, the serialized SendRequest) tells, and the
  caller reads it.
]]
local index, migrations = KEYS[1], KEYS[2]
local prefix = ARGV[1]
local limit = tonumber(ARGV[3])
local chat = ARGV[6]
local keep = tonumber(ARGV[7])

-- @include keyset

local start = 0
if ARGV[4] ~= '' then
  start = keyset_start(index, ARGV[4], ARGV[5], false)
end
local page = redis.call('ZRANGE', index, start, start + limit - 1, 'WITHSCORES')
local out = { 0, '', '', 0, 0 }
if start + #page / 2 < redis.call('ZCARD', index) then
  out[1] = 1
end
if #page > 0 then
  out[2], out[3] = page[#page - 1], page[#page]
end
local moved_to = chat ~= '' and redis.call('HGET', migrations, chat)
local unsure = {}
local matched = 0
local smallest = {} -- ascending id numbers, at most `keep` (ids end in a decimal sequence)
-- What precedes the number: the bot's part of the id ('' for the default bot), the same
-- for every job of the queue.
local id_prefix = #page > 0 and string.match(page[1], '^(.-)%d+$') or ''
for i = 1, #page, 2 do
  local id = page[i]
  local current = chat ~= '' and redis.call('HGET', prefix .. 'job:' .. id, 'ch')
  if chat == '' or current == chat then
    matched = matched + 1
    if keep == 0 then
      out[#out + 1] = id
    else
      local v = tonumber(string.match(id, '%d+$'))
      if #smallest < keep or v < smallest[#smallest] then
        local at = #smallest + 1
        while at > 1 and smallest[at - 1] > v do
          at = at - 1
        end
        table.insert(smallest, at, v)
        smallest[keep + 1] = nil
      end
    end
  elseif moved_to and current == moved_to then
    unsure[#unsure + 1] = id
    unsure[#unsure + 1] = redis.call('HGET', prefix .. 'job:' .. id, 'p')
  end
end
for _, v in ipairs(smallest) do
  out[#out + 1] = id_prefix .. string.format('%d', v)
end
out[4], out[5] = matched, #out - 5
for i = 1, #unsure do
  out[#out + 1] = unsure[i]
end
return out

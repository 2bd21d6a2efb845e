#!lua flags=allow-oom
--[[
  A group became a supergroup (Telegram answered "migrate_to_chat_id"): remember the
  new chat id, and move the leased job and every job still queued for the old chat to
  the new chat's queue, each keeping its rank. They are then sent under the new chat's
  pacing, like any other job of that chat. No attempt is used.

  The moved jobs move from the old chat's index (jc:<chat>, SearchJobs) to the new one's.

  Jobs of the old chat that are delayed or leased elsewhere at this moment keep the old
  id; their send meets the same answer and brings them here too.

  KEYS[1] active      zset  leased job ids
  KEYS[2] waiting     zset  index of waiting job ids
  KEYS[3] ready       zset  chats that may send now
  KEYS[4] paced       zset  chats held by pacing or a pause
  KEYS[5] migrations  hash  old chat id -> new chat id
  KEYS[6] events      stream  job state changes (includes/events.lua)

  ARGV[1] prefix    key prefix (with the hash tag)
  ARGV[2] config    the static configuration (JSON; the per-chat limits)
  ARGV[3] job_id    job id
  ARGV[4] token     lease token
  ARGV[5] new_chat  the new chat id

  Returns {code, moved}: code OK with the number of jobs moved to the new chat (the
  leased one included), LEASE_LOST or JOB_NOT_FOUND.
]]
local active, waiting, ready, paced, migrations = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local prefix, cfg = ARGV[1], cjson.decode(ARGV[2])
local events = KEYS[6]
local id, token, new_chat = ARGV[3], ARGV[4], ARGV[5]

-- @include time_ms
-- @include check_lease
-- @include to_waiting
-- @include place_chat
-- @include events

local jk = prefix .. 'job:' .. id
local refused = check_lease(jk, token)
if refused then
  return { refused, 0 }
end
local now = time_ms()
local old = redis.call('HGET', jk, 'ch')

-- Chats that had migrated to the old one now lead to the new one (no chains).
local mapped = redis.call('HGETALL', migrations)
for i = 1, #mapped, 2 do
  if mapped[i + 1] == old then
    redis.call('HSET', migrations, mapped[i], new_chat)
  end
end
redis.call('HSET', migrations, old, new_chat)

-- A job's number, its score in a chat's index (enqueue.lua).
local function number(job_id)
  return tonumber(string.match(job_id, '%d+$'))
end
local old_jobs, new_jobs = prefix .. 'jc:' .. old, prefix .. 'jc:' .. new_chat

redis.call('ZREM', active, id)
redis.call('HSET', jk, 'ch', new_chat)
redis.call('ZREM', old_jobs, id)
redis.call('ZADD', new_jobs, number(id), id)
to_waiting(prefix, waiting, id, new_chat, now)
emit(events, jk, id, WAITING, now, cfg)
local moved = 1
local old_queue = prefix .. 'q:' .. old
local new_queue = prefix .. 'q:' .. new_chat
local queued = redis.call('ZRANGE', old_queue, 0, -1, 'WITHSCORES')
for i = 1, #queued, 2 do
  redis.call('ZADD', new_queue, queued[i + 1], queued[i])
  redis.call('HSET', prefix .. 'job:' .. queued[i], 'ch', new_chat)
  redis.call('ZREM', old_jobs, queued[i])
  redis.call('ZADD', new_jobs, number(queued[i]), queued[i])
  moved = moved + 1
end
redis.call('DEL', old_queue)
place_chat(prefix, ready, paced, old, now, cfg)
place_chat(prefix, ready, paced, new_chat, now, cfg)
return { OK, moved }

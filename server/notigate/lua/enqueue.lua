--[[
  Enqueue a batch of messages atomically.

  KEYS[1] seq         string  job id / FIFO sequence counter
  KEYS[2] waiting     zset    index of waiting job ids, score = time they became waiting
  KEYS[3] ready       zset    chats that may send now, score = rank of their head job
  KEYS[4] paced       zset    chats held by pacing or a 429 pause, score = time they open
  KEYS[5] delayed     zset    job ids not yet due, score = due time (ms)
  KEYS[6] stats       hash    lifetime counters
  KEYS[7] migrations  hash    old chat id -> new chat id (groups upgraded to supergroups)

  ARGV[1]    key prefix (with the hash tag)
  ARGV[2]    idempotency key lifetime (ms)
  ARGV[3..7] private rate, private window ms, group rate, group window ms, chat margin ms
  ARGV[8]    n, the number of messages
  ARGV[9]    the messages, packed back to back; each is a header
             struct '>BddBBHI': priority (0..10), delay ms, due time (ms since the epoch,
             0 = none; send_at: compared with Redis TIME here, not with a gateway's clock,
             so replicas with skewed clocks schedule alike; a past one means now), max
             attempts (0 = the server's default at each retry decision), then the byte
             lengths of the chat id, the
             idempotency key ('' = none) and the payload (the SendRequest, serialized),
             followed by those three strings. (One argument instead of six per message:
             encoding the arguments was the client's largest cost in SendBatch.)

  Returns a flat array: job id, duplicate flag (0/1), for each message in order.
  Rank = (10 - priority) * 2^44 + seq: lower is sent first, FIFO within a priority,
  exact in a double.
]]
local seq_key, waiting, ready, paced, delayed, stats, migrations =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local prefix = ARGV[1]
local idem_ttl = tonumber(ARGV[2])

-- @include common

local lim = limits_from(ARGV, 3)
local n = tonumber(ARGV[8])
local now = time_ms()

local function earliest()
  if redis.call('ZCARD', ready) > 0 then
    return now
  end
  local e = math.huge
  for _, z in ipairs({ paced, delayed }) do
    local head = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
    if #head > 0 and tonumber(head[2]) < e then
      e = tonumber(head[2])
    end
  end
  return e
end

local before = earliest()
local out = {}
local touched = {} -- chat -> the smallest rank queued to it by this call
local created, duplicates = 0, 0
local seq = tonumber(redis.call('GET', seq_key) or '0')
local migrated = redis.call('EXISTS', migrations) == 1
local newly_waiting = {}
local packed = ARGV[9]
local pos = 1
for _ = 1, n do
  local priority, delay, due_at, max_attempts, chat_len, idem_len, payload_len
  priority, delay, due_at, max_attempts, chat_len, idem_len, payload_len, pos =
    struct.unpack('>BddBBHI', packed, pos)
  local chat = string.sub(packed, pos, pos + chat_len - 1)
  pos = pos + chat_len
  local idem = string.sub(packed, pos, pos + idem_len - 1)
  pos = pos + idem_len
  local payload = string.sub(packed, pos, pos + payload_len - 1)
  pos = pos + payload_len
  local existing = false
  if idem ~= '' then
    existing = redis.call('GET', prefix .. 'idem:' .. idem)
  end
  if existing then
    out[#out + 1] = existing
    out[#out + 1] = 1
    duplicates = duplicates + 1
  else
    seq = seq + 1
    local id = tostring(seq)
    local rank = job_rank(priority, seq)
    local target = chat
    if migrated then
      target = redis.call('HGET', migrations, chat) or chat
    end
    local jk = prefix .. 'job:' .. id
    -- Fields that would hold 0 (a, st, tk, pr) or the creation time (u, due) are
    -- left out: a missing field reads as 0 / the creation time, and each one
    -- costs memory for every queued job. The rank follows from id and priority.
    local due = now + delay
    if due_at > due then
      due = due_at
    end
    if due > now then
      redis.call('HSET', jk, 'p', payload, 'ch', target, 'c', now, 's', DELAYED, 'due', due)
      redis.call('ZADD', delayed, due, id)
    else
      redis.call('HSET', jk, 'p', payload, 'ch', target, 'c', now, 's', WAITING)
      redis.call('ZADD', prefix .. 'q:' .. target, rank, id)
      newly_waiting[#newly_waiting + 1] = now
      newly_waiting[#newly_waiting + 1] = id
      if not touched[target] or rank < touched[target] then
        touched[target] = rank
      end
    end
    if max_attempts > 0 then
      redis.call('HSET', jk, 'ma', max_attempts)
    end
    if priority > 0 then
      redis.call('HSET', jk, 'pr', priority)
    end
    if idem ~= '' then
      redis.call('SET', prefix .. 'idem:' .. idem, id, 'PX', idem_ttl)
    end
    out[#out + 1] = id
    out[#out + 1] = 0
    created = created + 1
  end
end
if created > 0 then
  redis.call('SET', seq_key, string.format('%d', seq))
  redis.call('HINCRBY', stats, 'enqueued', created)
end
-- One ZADD per 500 jobs instead of one per job (unpack stays far below Lua's stack limit).
for i = 1, #newly_waiting, 1000 do
  redis.call('ZADD', waiting, unpack(newly_waiting, i, math.min(i + 999, #newly_waiting)))
end
-- Invariant of every script: a chat with queued jobs is in exactly one of ready and
-- paced. A paced chat's opening time does not depend on its queue, and a ready chat's
-- score is its head's rank, so only a chat that was in neither (its queue was empty)
-- needs the full placement.
for chat, rank in pairs(touched) do
  local score = redis.call('ZSCORE', ready, chat)
  if score then
    if rank < tonumber(score) then
      redis.call('ZADD', ready, rank, chat)
    end
  elseif not redis.call('ZSCORE', paced, chat) then
    place_chat(ready, paced, chat, now, lim)
  end
end
if duplicates > 0 then
  redis.call('HINCRBY', stats, 'duplicates', duplicates)
end
if earliest() < before then
  wake()
end
return out

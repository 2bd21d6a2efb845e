--[[
  Shared helpers, spliced into a script where it says `-- @include common`.
  Expects these locals to be defined by the including script before use:
    prefix   key prefix with the queue's hash tag, e.g. "{notigate:default}:"
  Key layout (see server/notigate/keys.py):
    <prefix>job:<id>   hash   p payload, ch chat, pr priority, s state (one letter, below), a attempts,
                              ma max attempts, st stalls, tk lease token (unique, see
                              dequeue.lua), c/u/d/due times (ms), e last error, m Telegram
                              message id; pr/a/st absent = 0, tk absent = never leased,
                              u/due absent = c
    <prefix>q:<chat>   zset   the chat's waiting job ids, score = rank
    <prefix>w:<chat>   list   the chat's recent send times (ms), newest first
    <prefix>cp:<chat>  string the chat is paused until this time (ms), set after a 429
]]

-- Job states as stored in the job hash's `s` field (one letter: it is kept for
-- every queued job). server/notigate/queue.py mirrors them.
local WAITING, DELAYED, ACTIVE, COMPLETED, FAILED, CANCELLED = 'w', 'd', 'a', 'c', 'f', 'x'

local function time_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Private chats have positive numeric ids; groups, supergroups and channels
-- have negative ids or @usernames.
local function chat_limit(chat, lim)
  if string.match(chat, '^%d+$') then
    return lim.private_rate, lim.private_window
  end
  return lim.group_rate, lim.group_window
end

-- Earliest time (ms) at which `log` (a newest-first list of send times) may
-- take one more send without exceeding `rate` sends in any `window` ms.
local function window_open_at(log, rate, window, margin)
  if redis.call('LLEN', log) < rate then
    return 0
  end
  local oldest = tonumber(redis.call('LINDEX', log, rate - 1))
  return oldest + window + margin
end

local function record_send(log, rate, window, margin, now)
  redis.call('LPUSH', log, now)
  redis.call('LTRIM', log, 0, rate - 1)
  redis.call('PEXPIRE', log, window + margin + 1000)
end

-- Put `chat` in `ready` (scored by its most urgent job) when it may send now,
-- in `paced` (scored by when it may send) when its window or a 429 pause
-- holds it back, or in neither when it has nothing queued. Idempotent.
local function place_chat(ready, paced, chat, now, lim)
  local head = redis.call('ZRANGE', prefix .. 'q:' .. chat, 0, 0, 'WITHSCORES')
  if #head == 0 then
    redis.call('ZREM', ready, chat)
    redis.call('ZREM', paced, chat)
    return
  end
  local rate, window = chat_limit(chat, lim)
  local open = window_open_at(prefix .. 'w:' .. chat, rate, window, lim.margin)
  local pause = tonumber(redis.call('GET', prefix .. 'cp:' .. chat) or '0')
  if pause > open then
    open = pause
  end
  if open > now then
    redis.call('ZREM', ready, chat)
    redis.call('ZADD', paced, open, chat)
  else
    redis.call('ZREM', paced, chat)
    redis.call('ZADD', ready, head[2], chat)
  end
end

-- A job's rank: lower is sent first; by priority, then FIFO (the id is the sequence).
local function job_rank(priority, id)
  return (10 - priority) * 17592186044416 + tonumber(id)
end

-- Move a job into its chat's queue as waiting, keeping its original rank.
local function to_waiting(waiting, id, chat, now)
  local jk = prefix .. 'job:' .. id
  local f = redis.call('HMGET', jk, 'pr', 'r')
  -- 'r' is the rank as stored by versions that kept it in the hash.
  local rank = f[2] or job_rank(tonumber(f[1] or '0'), id)
  redis.call('ZADD', prefix .. 'q:' .. chat, rank, id)
  redis.call('ZADD', waiting, now, id)
  redis.call('HSET', jk, 's', WAITING, 'u', now)
end

-- Keep at most `keep` entries and none older than `age` ms in a retention
-- zset (scored by finish time), deleting the trimmed jobs' hashes.
local function trim(zset, keep, age, now)
  local n = redis.call('ZCARD', zset)
  if n > keep then
    local old = redis.call('ZRANGE', zset, 0, n - keep - 1)
    for _, id in ipairs(old) do
      redis.call('DEL', prefix .. 'job:' .. id)
    end
    redis.call('ZREMRANGEBYRANK', zset, 0, n - keep - 1)
  end
  if age > 0 then
    local expired = redis.call('ZRANGEBYSCORE', zset, '-inf', now - age, 'LIMIT', 0, 100)
    for _, id in ipairs(expired) do
      redis.call('DEL', prefix .. 'job:' .. id)
      redis.call('ZREM', zset, id)
    end
  end
end

-- Wake sleeping workers (every replica) when the earliest event moved earlier.
local function wake()
  redis.call('PUBLISH', prefix .. 'wake', '1')
end

local function limits_from(argv, i)
  return {
    private_rate = tonumber(argv[i]),
    private_window = tonumber(argv[i + 1]),
    group_rate = tonumber(argv[i + 2]),
    group_window = tonumber(argv[i + 3]),
    margin = tonumber(argv[i + 4]),
  }
end

-- The job's state if `token` still holds its lease, else nil: a worker whose
-- lease expired (and whose job may be leased again elsewhere) must not decide
-- the job's fate. Tokens are unique across the life of the store (dequeue.lua),
-- so a token matches only the job, and the lease, it was minted for: never a job
-- that took over the id after the store lost its data.
local function leased(jk, token)
  local f = redis.call('HMGET', jk, 's', 'tk')
  if f[1] == ACTIVE and f[2] == token then
    return f[1]
  end
  return nil
end

local function finish(zset, jk, id, state, now)
  redis.call('HSET', jk, 's', state, 'u', now)
  redis.call('ZADD', zset, now, id)
end

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

-- Keyset paging of a zset: the rank (in the `desc` or ascending order) of the first
-- entry after the entry `id` that had `score`, whether or not that entry is still
-- there. A member that stays in the zset is visited exactly once by a walk, however
-- many others enter or leave it between pages.
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

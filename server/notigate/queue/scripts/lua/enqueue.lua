--[[
  Enqueue a batch of messages atomically.

  KEYS[1] seq         string  job id / FIFO sequence counter
  KEYS[2] waiting     zset    index of waiting job ids, score = time they became waiting
  KEYS[3] ready       zset    chats that may send now, score = rank of their head job
  KEYS[4] paced       zset    chats held by pacing or a 429 pause, score = time they open
  KEYS[5] delayed     zset    job ids not yet due, score = due time (ms)
  KEYS[6] stats       hash    lifetime counters
  KEYS[7] migrations  hash    old chat id -> new chat id (groups upgraded to supergroups)
  KEYS[8] events      stream  job state changes (includes/events.lua)

  ARGV[1] prefix          key prefix (with the hash tag)
  ARGV[2] config          the static configuration (JSON; idempotency_ttl_ms: how long a
                          key is remembered, the per-chat limits, origin, id_prefix: what
                          the bot's job ids start with)
  ARGV[3] n               the number of messages
  ARGV[4] messages        the messages, packed back to back; each is a header
                          struct '>BddBBHIH': priority (0..10), delay ms, due time (ms since
                          the epoch, 0 = none; send_at: compared with Redis TIME here, not
                          with a gateway's clock, so replicas with skewed clocks schedule
                          alike; a past one means now), max attempts (0 = the server's
                          default at each retry decision), then the byte lengths of the chat
                          id, the idempotency key ('' = none), the payload (the
                          SendRequest, serialized) and the extra fields (H: field NUL
                          value NUL ..., set on the job as they are: kind, weight, edit
                          target, uploads, see records.py; an upload listed under `up`
                          is pinned), followed by those four strings and,
                          when there is a key, the request's 16-byte fingerprint. (One
                          argument instead of six per message: encoding the arguments was
                          the client's largest cost in SendBatch.)
  ARGV[5] all_or_nothing  '1': all or nothing (one SendBatch): if any message conflicts,
                          nothing at all is stored. '0': each message stands alone
                          (concurrent Sends sharing this call): a conflicting message is
                          skipped, the others are stored.
  ARGV[6] keyed           how many messages have an idempotency key (0 skips the checks)
  ARGV[7] id_floor        the highest job id the calling gateway has been handed (0 = none)

  Every job created is added to jc:<chat> (zset, score: the job's number), the chat it
  goes to: SearchJobs reads a chat's jobs from it, newest first.

  idem:<key> holds "<job id>:<fingerprint>" (a bare job id when stored before fingerprints
  existed: such a key matches any request, as it did then).

  Returns a flat array, job id and outcome for each message in order:
    CREATED;
    DUPLICATE: the key came before with the same request; the id is that first job's;
    CONFLICT: the key came before with a different request; the id is that first job's
      ('' if it is an earlier message of this call that is not stored); nothing is
      stored for this message;
    NOT_STORED: all or nothing and another message conflicts; the id is ''.
  then two more elements: the stored sequence when it was below id_floor (the store went
  back: it lost writes the caller had seen), else -1; and woke: 1 when the other
  replicas were woken (something became due earlier than anything before).

  Job ids are never handed out twice, even by a store that lost its data: the next id
  is the greatest of seq + 1, the caller's highest id + 1 and Redis's clock, counted in
  1/10,000 s since 2026-01-01 UTC. A store that was flushed, restarted without
  persistence or replaced by a replica that was behind thus starts above every id it
  handed out before, as long as ids were not taken faster than 10,000 per second on
  average (and Redis's clock did not go back). Rank = (10 - priority) * 2^44 + id:
  lower is sent first, FIFO within a priority, exact in a double; clock-based ids stay
  below 2^44 until about 2081.
]]
local seq_key, waiting, ready, paced, delayed, stats, migrations =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local prefix, cfg = ARGV[1], cjson.decode(ARGV[2])
local events = KEYS[8]
local n, packed = tonumber(ARGV[3]), ARGV[4]
local all_or_nothing, keyed = ARGV[5] == '1', tonumber(ARGV[6])
local caller_floor = tonumber(ARGV[7])

-- @include states
-- @include codes
-- @include time_ms
-- @include job_rank
-- @include place_chat
-- @include earliest
-- @include wake
-- @include job_uploads
-- @include events

local now = time_ms()

-- 2026-01-01 UTC, and 10 ids per ms (10,000 per second) of Redis's clock.
local ID_EPOCH_MS, IDS_PER_MS = 1767225600000, 10
local stored_seq = tonumber(redis.call('GET', seq_key) or '0')
local went_back = -1
if stored_seq < caller_floor then
  went_back = stored_seq
end

local FINGERPRINT_LEN = 16

-- First pass, before anything is written: the verdict on every keyed message, so that
-- all or nothing can refuse a batch whole. One GET per distinct key (no more than a
-- single pass would make); a key seen again in this call is answered from these tables.
--   key_fp[key]: the fingerprint the key stands for ('' = stored without one: matches all)
--   key_id[key]: its stored job id; a key first used in this call gets its id when the
--                second pass creates the job, and only if a later message needs it
--                (wanted): for the many keys used once, one table entry is all they cost
--   verdict[i]:  DUPLICATE or CONFLICT for a keyed message that creates no job
local key_fp, key_id, wanted, verdict = {}, {}, {}, {}
local conflicts = 0
local pos = 1
for i = 1, keyed > 0 and n or 0 do
  -- Only the lengths: the header's first 18 bytes are priority, delay, due time and max
  -- attempts.
  local chat_len, idem_len, payload_len
  local extra_len
  chat_len, idem_len, payload_len, extra_len, pos = struct.unpack('>BHIH', packed, pos + 18)
  if idem_len == 0 then
    pos = pos + chat_len + payload_len + extra_len
  else
    pos = pos + chat_len
    local idem = string.sub(packed, pos, pos + idem_len - 1)
    pos = pos + idem_len + payload_len + extra_len
    local fp = string.sub(packed, pos, pos + FINGERPRINT_LEN - 1)
    pos = pos + FINGERPRINT_LEN
    local known = key_fp[idem]
    if not known then
      local stored = redis.call('GET', prefix .. 'idem:' .. idem)
      if stored then
        -- The fingerprint's length says where the id ends: an id may hold a ':' itself
        -- (<bot>:<number>), and the fingerprint's bytes may too.
        local sep = #stored - FINGERPRINT_LEN
        if sep > 1 and string.sub(stored, sep, sep) == ':' then
          key_id[idem], known = string.sub(stored, 1, sep - 1), string.sub(stored, sep + 1)
        else
          key_id[idem], known = stored, ''
        end
      end
      key_fp[idem] = known or fp
    elseif not key_id[idem] then
      wanted[idem] = true
    end
    if known then
      if known == '' or known == fp then
        verdict[i] = DUPLICATE
      else
        verdict[i] = CONFLICT
        conflicts = conflicts + 1
      end
    end
  end
end

if all_or_nothing and conflicts > 0 then
  local out = {}
  pos = 1
  for i = 1, n do
    local chat_len, idem_len, payload_len, extra_len
    chat_len, idem_len, payload_len, extra_len, pos = struct.unpack('>BHIH', packed, pos + 18)
    local id, outcome = '', NOT_STORED
    if verdict[i] == CONFLICT then
      local idem = string.sub(packed, pos + chat_len, pos + chat_len + idem_len - 1)
      -- No id: the key's first use is an earlier message of this call.
      id, outcome = key_id[idem] or '', CONFLICT
    end
    pos = pos + chat_len + idem_len + payload_len + extra_len
    if idem_len > 0 then
      pos = pos + FINGERPRINT_LEN
    end
    out[#out + 1] = id
    out[#out + 1] = outcome
  end
  out[#out + 1] = went_back
  out[#out + 1] = 0
  return out
end

local before = earliest(ready, { paced, delayed }, now)
local out = {}
local touched = {} -- chat -> the smallest rank queued to it by this call
local created, duplicates = 0, 0
-- The last id taken: the next is one above it.
local seq = math.max(stored_seq, caller_floor, (now - ID_EPOCH_MS) * IDS_PER_MS - 1)
local migrated = redis.call('EXISTS', migrations) == 1
local newly_waiting = {}
pos = 1
for i = 1, n do
  local priority, delay, due_at, max_attempts, chat_len, idem_len, payload_len, extra_len
  priority, delay, due_at, max_attempts, chat_len, idem_len, payload_len, extra_len, pos =
    struct.unpack('>BddBBHIH', packed, pos)
  -- Strings are cut out only where needed: a duplicate needs its key alone.
  local chat_at, idem_at = pos, pos + chat_len
  local payload_at = idem_at + idem_len
  local extra_at = payload_at + payload_len
  local fp_at = extra_at + extra_len
  pos = fp_at
  if idem_len > 0 then
    pos = pos + FINGERPRINT_LEN
  end
  local idem = string.sub(packed, idem_at, payload_at - 1)
  local v = verdict[i]
  if v then
    -- The first job of the key: stored earlier, or created above by this loop.
    out[#out + 1] = key_id[idem]
    out[#out + 1] = v
    if v == DUPLICATE then
      duplicates = duplicates + 1
    end
  else
    local chat = string.sub(packed, chat_at, idem_at - 1)
    local payload = string.sub(packed, payload_at, extra_at - 1)
    seq = seq + 1
    -- Not tostring: it rounds to 14 significant digits.
    local id = cfg.id_prefix .. string.format('%d', seq)
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
    redis.call('ZADD', prefix .. 'jc:' .. target, seq, id)
    if max_attempts > 0 then
      redis.call('HSET', jk, 'ma', max_attempts)
    end
    if priority > 0 then
      redis.call('HSET', jk, 'pr', priority)
    end
    local kind = nil
    if extra_len > 0 then
      -- field NUL value NUL ...: kind, weight, edit method, target, uploads (records.py)
      local extra = string.sub(packed, extra_at, fp_at - 1)
      local at = 1
      while at <= extra_len do
        local sep = string.find(extra, '\0', at, true)
        local stop = string.find(extra, '\0', sep + 1, true) or extra_len + 1
        local field, value = string.sub(extra, at, sep - 1), string.sub(extra, sep + 1, stop - 1)
        redis.call('HSET', jk, field, value)
        if field == 'up' then
          pin_uploads(prefix, value)
        elseif field == 'k' then
          kind = value
        end
        at = stop + 1
      end
    end
    append_event(events, id, due > now and DELAYED or WAITING, now, cfg, target, 0, kind)
    if idem_len > 0 then
      if wanted[idem] then
        key_id[idem] = id
      end
      local fp = string.sub(packed, fp_at, pos - 1)
      redis.call('SET', prefix .. 'idem:' .. idem, id .. ':' .. fp, 'PX', cfg.idempotency_ttl_ms)
    end
    out[#out + 1] = id
    out[#out + 1] = CREATED
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
    place_chat(prefix, ready, paced, chat, now, cfg)
  end
end
if duplicates > 0 then
  redis.call('HINCRBY', stats, 'duplicates', duplicates)
end
local woke = 0
if earliest(ready, { paced, delayed }, now) < before then
  wake(prefix, cfg.origin)
  woke = 1
end
out[#out + 1] = went_back
out[#out + 1] = woke
return out

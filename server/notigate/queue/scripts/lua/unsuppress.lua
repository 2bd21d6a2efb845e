#!lua flags=allow-oom
--[[
  Lift a chat's suppression: jobs to it are sent again. With `validate_only` only
  look whether it is suppressed.

  KEYS[1] suppressed          hash  chat -> JSON {r = reason, t = time (ms), j = job id}
  KEYS[2] suppressed_by_time  zset  the suppressed chats, score = time suppressed (ms)

  ARGV[1] prefix         key prefix (with the hash tag)
  ARGV[2] config         the static configuration (JSON; unused)
  ARGV[3] chat           the chat id
  ARGV[4] validate_only  '1': change nothing

  Returns {OK, the suppression's JSON} (lifted, or would be), or {NOT_SUPPRESSED}.
]]
local suppressed, suppressed_by_time = KEYS[1], KEYS[2]
local chat, validate_only = ARGV[3], ARGV[4] == '1'

-- @include codes

local what = redis.call('HGET', suppressed, chat)
if not what then
  return { NOT_SUPPRESSED }
end
if not validate_only then
  redis.call('HDEL', suppressed, chat)
  redis.call('ZREM', suppressed_by_time, chat)
end
return { OK, what }

-- Wake the sleeping workers of every replica: new work may be due earlier than
-- they think. The message is the caller's origin, so the calling gateway, which
-- wakes its own workers directly, skips its own message.
local function wake(prefix, origin)
  redis.call('PUBLISH', prefix .. 'wake', origin)
end

-- The sliding-window limit of `chat` from the static configuration `cfg`: private
-- chats have positive numeric ids; groups, supergroups and channels have negative
-- ids or @usernames.
local function chat_limit(chat, cfg)
  if string.match(chat, '^%d+$') then
    return cfg.private_rate, cfg.private_window_ms
  end
  return cfg.group_rate, cfg.group_window_ms
end

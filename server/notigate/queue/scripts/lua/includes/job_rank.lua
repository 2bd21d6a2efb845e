-- A job's rank: lower is sent first; by priority, then FIFO (ids only grow).
-- (10 - priority) * 2^44 + id is exact in a double while ids stay below 2^44.
-- `id`: the sequence number, or a job id ('123', or '<bot>:123' for a bot other than
-- the default), whose trailing digits are that number.
local function job_rank(priority, id)
  local n = type(id) == 'number' and id or tonumber(string.match(id, '%d+$'))
  return (10 - priority) * 17592186044416 + n
end

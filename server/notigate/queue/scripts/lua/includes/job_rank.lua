-- A job's rank: lower is sent first; by priority, then FIFO (ids only grow).
-- (10 - priority) * 2^44 + id is exact in a double while ids stay below 2^44.
local function job_rank(priority, id)
  return (10 - priority) * 17592186044416 + tonumber(id)
end

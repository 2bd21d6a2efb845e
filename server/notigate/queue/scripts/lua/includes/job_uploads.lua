-- @include uploads:upload_refs

-- The uploads a job sends (its hash's `up` field: ids separated by spaces), pinned
-- while it is unfinished and released when it finishes (notigate.uploads owns the
-- keys: see upload_refs.lua there). An upload not ready any more (trimmed) is not
-- pinned: the job fails at its send, naming it.

local function pin_uploads(prefix, ids)
  for id in string.gmatch(ids or '', '%S+') do
    pin_upload(prefix, id)
  end
end

local function release_uploads(prefix, ids, now, ttl_ms)
  for id in string.gmatch(ids or '', '%S+') do
    release_upload(prefix, id, now, ttl_ms)
  end
end

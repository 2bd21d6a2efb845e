-- An upload's state, as stored in its hash's `st` field (notigate.uploads.keys).
local UPLOADING, READY = 'u', 'r'

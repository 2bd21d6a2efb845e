"""Redis key names of the upload store, under the queue's prefix (and so its hash tag).

The queue's scripts pin and release uploads by these same names (``lua/includes/
upload_refs.lua``), which is why they live beside the queue's keys in one slot:

- ``up:<id>``    hash: ``fn`` filename, ``ct`` content type, ``sz`` declared size,
  ``rx`` bytes received so far, ``sha`` sha256 hex, ``st`` state (``u`` uploading,
  ``r`` ready), ``nc`` chunk count, ``refs`` unfinished jobs using it (absent = 0),
  ``c`` creation time (ms)
- ``up:<id>:d``  list: the content, in chunks of at most ``UploadLimits.chunk_bytes``
- ``uploads``    zset: id -> when it may be trimmed (ms); ``+inf`` while pinned
- ``upload_bytes`` string: bytes held by every upload, complete or partial
- ``fid:<bot>:<kind>:<sha256>`` string: Telegram's file_id of that content
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from notigate_client import pb

# 16 random bytes, URL-safe base64 without padding: an id is a capability (whoever
# knows it may send the file), so it must not be guessable.
_ID_BYTES = 16
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{22}")
_SHA256 = re.compile(r"[0-9a-f]{64}")

# Per media kind, the name the file_id keys use.
MEDIA_KIND_NAMES: dict[int, str] = {
    value: name.removeprefix("MEDIA_KIND_").lower()
    for name, value in pb.MediaKind.items()
    if value != pb.MEDIA_KIND_UNSPECIFIED
}


def new_upload_id() -> str:
    """A fresh, unguessable upload id."""
    return secrets.token_urlsafe(_ID_BYTES)


def is_upload_id(text: str) -> bool:
    """Whether ``text`` has the form of an upload id. Anything else names no upload and
    must not reach a key name (``x:d`` would name the chunks of upload ``x``)."""
    return _UPLOAD_ID.fullmatch(text) is not None


def is_sha256(text: str) -> bool:
    """Whether ``text`` is a sha256 digest in lowercase hex."""
    return _SHA256.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class UploadKeys:
    """The fixed keys of the upload store of one queue (``prefix`` is the queue's)."""

    prefix: str
    uploads: str
    upload_bytes: str

    @classmethod
    def for_prefix(cls, prefix: str) -> UploadKeys:
        return cls(prefix=prefix, uploads=prefix + "uploads", upload_bytes=prefix + "upload_bytes")

    def upload(self, upload_id: str) -> str:
        """The hash of one upload."""
        return f"{self.prefix}up:{upload_id}"

    def chunks(self, upload_id: str) -> str:
        """The list of one upload's chunks."""
        return f"{self.prefix}up:{upload_id}:d"

    def claim(self, upload_id: str) -> str:
        """Who is handing one upload's bytes to Telegram first (the others wait for its
        file_id)."""
        return f"{self.prefix}up:{upload_id}:claim"

    def file_id(self, bot_id: int, kind: int, sha256: str) -> str:
        """Where Telegram's file_id of content ``sha256`` sent by bot ``bot_id`` as
        ``kind`` (a ``pb.MediaKind``) is kept."""
        return f"{self.prefix}fid:{bot_id}:{MEDIA_KIND_NAMES[kind]}:{sha256}"

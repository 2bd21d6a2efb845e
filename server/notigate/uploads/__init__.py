"""Files kept in the queue's Redis for media sends: upload once (UploadFile), send to
many chats by ``Media.upload_id``.

Layers inside the package: ``limits``, ``keys``, ``errors`` < ``metadata``, ``source``
< ``scripts`` < ``store`` < ``stream``. The queue's scripts pin and release uploads with
``lua/includes/upload_refs.lua``.
"""

from __future__ import annotations

from notigate.uploads.errors import RefusalKind, UploadRefused
from notigate.uploads.keys import MEDIA_KIND_NAMES, UploadKeys, is_upload_id, new_upload_id
from notigate.uploads.limits import UploadLimits
from notigate.uploads.metadata import metadata_violations
from notigate.uploads.store import UploadInfo, UploadStore
from notigate.uploads.stream import receive_upload

__all__ = [
    "MEDIA_KIND_NAMES",
    "RefusalKind",
    "UploadInfo",
    "UploadKeys",
    "UploadLimits",
    "UploadRefused",
    "UploadStore",
    "is_upload_id",
    "metadata_violations",
    "new_upload_id",
    "receive_upload",
]

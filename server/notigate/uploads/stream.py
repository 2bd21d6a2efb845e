"""An UploadFile stream, from its first message to the stored file.

The first message carries the metadata, every later one a chunk (empty chunks are
skipped: they carry nothing); the bytes go to Redis as they come, and their digest is
computed on the way, so at most one chunk is held here at a time. Whatever ends the
stream early (a refusal, a client that cancels or goes away, any exception) drops what
was stored and is re-raised.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterable

from notigate.errors import StoreError
from notigate.uploads.errors import invalid
from notigate.uploads.store import UploadStore
from notigate_client import pb

log = logging.getLogger("notigate.uploads")


async def receive_upload(
    store: UploadStore, requests: AsyncIterable[pb.UploadFileRequest]
) -> pb.UploadFileResponse:
    """Store the file an UploadFile stream carries; its id, size and digest.

    Raises :class:`~notigate.uploads.errors.UploadRefused` (nothing of the upload
    kept), a :class:`~notigate.errors.StoreError` when Redis fails, or whatever the
    stream raised (``asyncio.CancelledError`` when the client goes away).
    """
    stream = aiter(requests)
    first = await anext(stream, None)
    if first is None or first.WhichOneof("data") != "metadata":
        raise invalid("metadata", "the first message of an upload carries its metadata")
    upload_id = await store.begin(first.metadata)
    digest = hashlib.sha256()
    try:
        async for request in stream:
            which = request.WhichOneof("data")
            if which == "metadata":
                raise invalid("metadata", "only the first message of an upload carries it")
            if which is None:
                raise invalid("data", "neither metadata nor chunk")
            if request.chunk:
                digest.update(request.chunk)
                await store.append(upload_id, request.chunk)
        info = await store.commit(upload_id, digest.hexdigest())
    except BaseException:
        await _abort(store, upload_id)
        raise
    return pb.UploadFileResponse(upload_id=upload_id, size=info.size, sha256=info.sha256)


async def _abort(store: UploadStore, upload_id: str) -> None:
    """Drop the upload, even while the stream's task is being cancelled (shielded: a
    second cancellation leaves the abort running). If Redis fails now, the upload is
    trimmed once its stream has been quiet for ``partial_ttl_s``."""
    try:
        await asyncio.shield(store.abort(upload_id))
    except StoreError:
        log.warning("could not drop upload %s; it expires on its own", upload_id)

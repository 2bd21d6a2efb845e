"""An UploadFile stream, from its first message to the stored file.

The first message carries the metadata, every later one a chunk (empty chunks are
skipped: they carry nothing); the bytes go to Redis as they come, and their digest is
computed on the way, so at most one chunk is held here at a time. Whatever ends the
stream early (a refusal, a client that cancels or goes away, any exception) drops what
was stored and is re-raised.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, Awaitable, Callable

from notigate.uploads.errors import invalid
from notigate.uploads.store import UploadStore
from notigate_client import pb


async def receive_upload(
    store: UploadStore | Callable[[pb.UploadMetadata], Awaitable[UploadStore]],
    requests: AsyncIterable[pb.UploadFileRequest],
) -> pb.UploadFileResponse:
    """Store the file an UploadFile stream carries in ``store``, or the one its metadata
    picks (the bot's: the picker may end the call instead); its id, size and digest.

    Raises :class:`~notigate.uploads.errors.UploadRefused` (nothing of the upload
    kept), a :class:`~notigate.errors.StoreError` when Redis fails, or whatever the
    stream raised (``asyncio.CancelledError`` when the handler is cancelled).

    grpc.aio (1.85) ends the request stream of a call its client cancels as if the
    client had finished, with ``context.cancelled()`` still False: such an upload is
    refused at commit for its missing bytes, like any short one.
    """
    stream = aiter(requests)
    first = await anext(stream, None)
    if first is None or first.WhichOneof("data") != "metadata":
        raise invalid("metadata", "the first message of an upload carries its metadata")
    if not isinstance(store, UploadStore):
        store = await store(first.metadata)
    upload_id = await store.begin(first.metadata)
    digest = hashlib.sha256()
    try:
        async for request in stream:
            which = request.WhichOneof("data")
            if which == "metadata":
                raise invalid("metadata", "only the first message of an upload carries it")
            if which is None:
                raise invalid("data", "neither metadata nor chunk")
            chunk = request.chunk
            if chunk:
                digest.update(chunk)
                await store.append(upload_id, chunk)
        info = await store.commit(upload_id, digest.hexdigest())
    except BaseException:
        await store.abort_quietly(upload_id)
        raise
    return pb.UploadFileResponse(upload_id=upload_id, size=info.size, sha256=info.sha256)

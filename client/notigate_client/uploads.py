"""The request stream of ``UploadFile``: a metadata message, then the file in chunks.

A file is read one chunk at a time as gRPC asks for the next message, never whole, so a
50 MB document costs one chunk of memory. The size goes first (the server refuses a
stream that brings more or fewer bytes), so it is taken from the file system or by
seeking; a pipe or socket has neither and needs ``size=``.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import stat
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeAlias

from notigate_client._proto.notigate.v1 import notification_pb2 as pb

__all__ = ["DEFAULT_CHUNK_SIZE", "MAX_CHUNK_SIZE", "UploadPlan", "UploadSource", "plan_upload"]

# A chunk is at most 1 MiB, and the gateway takes gRPC messages of at most 1 MiB by
# default: the message's framing (a few bytes) must fit too. A quarter of that keeps
# memory small at little cost in messages.
MAX_CHUNK_SIZE = 1024 * 1024 - 64
DEFAULT_CHUNK_SIZE = 256 * 1024

UploadSource: TypeAlias = "str | os.PathLike[str] | IO[bytes]"


@dataclass(frozen=True, slots=True)
class UploadPlan:
    """What one upload sends; :meth:`requests` (or :meth:`async_requests`) builds the
    stream, again for each attempt when :attr:`restartable`."""

    metadata: pb.UploadMetadata
    chunk_size: int
    path: Path | None
    file: IO[bytes] | None
    # Where the file object's content starts (None: it cannot be rewound for a retry).
    start: int | None

    @property
    def restartable(self) -> bool:
        """Whether a failed attempt can be repeated from the first byte."""
        return self.path is not None or self.start is not None

    def _open(self) -> IO[bytes]:
        if self.path is not None:
            return self.path.open("rb")
        assert self.file is not None
        if self.start is not None:
            self.file.seek(self.start)
        return self.file

    def _close(self, f: IO[bytes]) -> None:
        # A file object the caller passed stays open: it is theirs to close.
        if self.path is not None:
            f.close()

    def requests(self) -> Iterator[pb.UploadFileRequest]:
        """The stream: metadata, then chunks up to the announced size."""
        yield pb.UploadFileRequest(metadata=self.metadata)
        f = self._open()
        try:
            left = self.metadata.size
            while left > 0:
                chunk = f.read(min(self.chunk_size, left))
                if not chunk:
                    return  # the file shrank: the server says the size was not met
                left -= len(chunk)
                yield pb.UploadFileRequest(chunk=chunk)
        finally:
            self._close(f)

    async def async_requests(self) -> AsyncIterator[pb.UploadFileRequest]:
        """:meth:`requests` with the reads in a thread, off the event loop."""
        yield pb.UploadFileRequest(metadata=self.metadata)
        f = await asyncio.to_thread(self._open)
        try:
            left = self.metadata.size
            while left > 0:
                chunk = await asyncio.to_thread(f.read, min(self.chunk_size, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield pb.UploadFileRequest(chunk=chunk)
        finally:
            self._close(f)


def _file_size(f: IO[bytes]) -> tuple[int | None, int | None]:
    """The bytes left in ``f`` from its position, and that position; None for what a
    pipe cannot tell."""
    try:
        seekable = f.seekable()
    except (AttributeError, OSError, ValueError):
        seekable = False
    start = f.tell() if seekable else None
    try:
        info = os.fstat(f.fileno())
    except (AttributeError, OSError, ValueError):  # io.BytesIO has no descriptor
        info = None
    if info is not None and stat.S_ISREG(info.st_mode):
        return info.st_size - (start or 0), start
    if start is not None:
        end = f.seek(0, os.SEEK_END)
        f.seek(start)
        return end - start, start
    return None, None


def plan_upload(
    source: UploadSource,
    *,
    filename: str | None = None,
    content_type: str | None = None,
    size: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    bot: str = "",
) -> UploadPlan:
    """The upload of ``source``: a path, or a binary file object read from its current
    position; for the messages of ``bot`` ("": the gateway's default bot).

    Raises:
        ValueError: no filename can be found, the size is unknown (a pipe without
            ``size=``), or ``chunk_size`` is outside 1..1 MiB.
        OSError: the path cannot be read.
    """
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be 1..{MAX_CHUNK_SIZE} bytes (1 MiB less framing)")
    path: Path | None = None
    file: IO[bytes] | None = None
    start: int | None = None
    found: int | None
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        found = path.stat().st_size
        if not path.is_file():
            raise ValueError(f"{path} is not a regular file")
        name = path.name
    else:
        file = source
        found, start = _file_size(source)
        raw_name = getattr(source, "name", None)
        name = os.path.basename(raw_name) if isinstance(raw_name, str) else ""
    if size is None:
        if found is None:
            raise ValueError("the file object cannot tell its size (a pipe?): pass size=")
        size = found
    if size < 0:
        raise ValueError("size must be >= 0")
    name = filename or name
    if not name:
        raise ValueError("the file object has no name: pass filename=")
    if content_type is None:
        content_type = mimetypes.guess_type(name)[0] or ""
    metadata = pb.UploadMetadata(filename=name, content_type=content_type, size=size, bot=bot)
    return UploadPlan(metadata, chunk_size, path, file, start)

"""Files the simulated bots send: file_id issuance and where a media parameter points.

A ``file_id`` is the URL-safe base64 (no padding) of 27 bytes::

    version (1 = 0x01) | kind code (1 byte) | bot id (8 bytes, signed big-endian)
    | content digest (16 bytes) | photo size index (1 byte, 0 for other kinds)

Kind codes: 1 photo, 2 document, 3 video, 4 animation, 5 audio, 6 voice. The content digest
is the first 16 bytes of the SHA-256 of the uploaded bytes, or of ``b"url:" + URL`` for a
file Telegram "fetched". The ``file_unique_id`` is the base64 of the kind's class (photo or
document-like) and the first 9 digest bytes: the same content gets the same unique id, for
every bot, as Telegram's unique ids are shared across bots.

Only ids this simulator issued are known, and an id works only for the bot it was issued
to. Like TDLib, a photo's id sends only a photo, while the document-like kinds (document,
video, animation, audio, voice) stand in for each other.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import mimetypes
import struct
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from notigate.simulator.wire import FilePart

__all__ = [
    "DOCUMENT_URL_SUFFIXES",
    "KINDS",
    "MAX_PHOTO_UPLOAD",
    "URL_FAILED",
    "URL_WRONG_TYPE",
    "WRONG_FILE",
    "FileRecord",
    "FileRegistry",
    "MediaSource",
    "decode_file_id",
    "default_mime",
    "encode_file_id",
    "mtproto_error",
    "resolve_file_id",
    "resolve_media",
    "unique_id",
    "url_failure",
]

WRONG_FILE = "Bad Request: wrong file identifier/HTTP URL specified"
URL_FAILED = "Bad Request: failed to get HTTP URL content"
URL_WRONG_TYPE = "Bad Request: wrong type of the web page content"
# TDLib's photo limit (FileLoaderUtils.cpp: 10 << 20) and its wording of the refusal.
MAX_PHOTO_UPLOAD = 10 * 1024 * 1024
# Paths Telegram accepts for sendDocument by URL (the Bot API documentation's list).
DOCUMENT_URL_SUFFIXES = (".gif", ".pdf", ".zip")

Kind = Literal["photo", "document", "video", "animation", "audio", "voice"]
KINDS: tuple[Kind, ...] = ("photo", "document", "video", "animation", "audio", "voice")
_CODES: dict[str, int] = {kind: i + 1 for i, kind in enumerate(KINDS)}
# TDLib's FileType names, for "can't use file of type X as Y".
_TD_TYPES = {
    "photo": "Photo",
    "document": "Document",
    "video": "Video",
    "animation": "Animation",
    "audio": "Audio",
    "voice": "VoiceNote",
}
_DEFAULT_MIME = {
    "video": "video/mp4",
    "animation": "video/mp4",
    "audio": "audio/mpeg",
    "voice": "audio/ogg",
}
_ID = struct.Struct(">BBq16sB")
_VERSION = 1
# Nominal size of a file Telegram fetched by URL: the simulator never sees its bytes.
_URL_FILE_SIZE = 65536


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def encode_file_id(kind: str, bot_id: int, digest: bytes, size_index: int = 0) -> str:
    """The file_id of ``kind`` content ``digest`` issued to ``bot_id``."""
    return _b64(_ID.pack(_VERSION, _CODES[kind], bot_id, digest[:16], size_index))


def decode_file_id(file_id: str) -> tuple[str, int, bytes, int] | None:
    """(kind, bot id, digest, photo size index) of a well-formed id, else None."""
    try:
        raw = base64.urlsafe_b64decode(file_id + "=" * (-len(file_id) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != _ID.size:
        return None
    version, code, bot_id, digest, size_index = _ID.unpack(raw)
    if version != _VERSION or not 1 <= code <= len(KINDS):
        return None
    return KINDS[code - 1], bot_id, digest, size_index


def unique_id(kind: str, digest: bytes, size_index: int = 0) -> str:
    """The file_unique_id of ``kind`` content ``digest`` (the same for every bot)."""
    klass = 1 if kind == "photo" else 2
    return _b64(bytes((klass, size_index)) + digest[:9])


@dataclass(frozen=True, slots=True)
class MediaSource:
    """Where a media parameter points: an ``upload`` (a multipart part), a ``url`` or a
    known ``file_id`` (``record``)."""

    origin: Literal["upload", "url", "file_id"]
    digest: bytes
    size: int
    file_name: str | None
    mime_type: str | None
    url: str | None = None
    record: FileRecord | None = None


@dataclass(frozen=True, slots=True)
class FileRecord:
    """A file the simulator issued an id for."""

    kind: str
    bot_id: int
    digest: bytes
    size: int
    file_name: str | None
    mime_type: str | None

    def file_id(self, size_index: int = 0) -> str:
        """This file's id (of photo size ``size_index``)."""
        return encode_file_id(self.kind, self.bot_id, self.digest, size_index)

    def unique_id(self, size_index: int = 0) -> str:
        """This file's unique id (of photo size ``size_index``)."""
        return unique_id(self.kind, self.digest, size_index)


class FileRegistry:
    """The files issued to each bot, by file_id."""

    __slots__ = ("_files",)

    def __init__(self) -> None:
        self._files: dict[str, FileRecord] = {}

    def issue(self, kind: str, bot_id: int, source: MediaSource, sizes: int = 1) -> FileRecord:
        """Register ``source`` sent as ``kind`` by ``bot_id`` (photos: ``sizes`` ids)."""
        record = FileRecord(
            kind, bot_id, source.digest, source.size, source.file_name, source.mime_type
        )
        for index in range(sizes):
            self._files[record.file_id(index)] = record
        return record

    def lookup(self, file_id: str) -> FileRecord | None:
        """The record of an issued id."""
        return self._files.get(file_id)

    def revoke(self, file_id: str) -> bool:
        """Stop accepting ``file_id`` (as Telegram may); False if it was not issued."""
        return self._files.pop(file_id, None) is not None

    def __len__(self) -> int:
        return len(self._files)

    def clear(self) -> None:
        """Forget every issued id."""
        self._files.clear()


def default_mime(kind: str, file_name: str | None) -> str | None:
    """The MIME type Telegram reports for ``kind`` named ``file_name``."""
    guessed = mimetypes.guess_type(file_name)[0] if file_name else None
    return guessed or _DEFAULT_MIME.get(kind) or ("application/octet-stream" if file_name else None)


def _upload_source(kind: str, part: FilePart) -> MediaSource | str:
    if part.size == 0:
        return "Bad Request: file must be non-empty"
    if kind == "photo" and part.size > MAX_PHOTO_UPLOAD:
        return (
            f"Bad Request: file of size {part.size} bytes is too big for a photo; "
            f"the maximum size is {MAX_PHOTO_UPLOAD} bytes"
        )
    mime = part.mime_type
    if not mime or mime == "application/octet-stream":
        mime = default_mime(kind, part.file_name)
    return MediaSource("upload", bytes.fromhex(part.sha256), part.size, part.file_name, mime)


def _url_source(kind: str, url: str) -> MediaSource:
    name = urlsplit(url).path.rsplit("/", 1)[-1] or None
    digest = hashlib.sha256(b"url:" + url.encode()).digest()
    return MediaSource("url", digest, _URL_FILE_SIZE, name, default_mime(kind, name), url=url)


def resolve_media(
    registry: FileRegistry,
    value: Any,
    kind: str,
    bot_id: int,
    params: dict[str, Any],
    *,
    field: str,
) -> MediaSource | str:
    """What a media parameter (``field`` for the "there is no X in the request" wording)
    points at, or the Bot API's description of why it points at nothing usable.

    URL problems are not found here: Telegram meets them when it fetches the file, at send
    time (see :func:`url_failure`).
    """
    if isinstance(value, FilePart):
        return _upload_source(kind, value)
    if not isinstance(value, str) or not value:
        return f"Bad Request: there is no {field} in the request"
    if value.startswith("attach://"):
        part = params.get(value[len("attach://") :])
        if not isinstance(part, FilePart):
            return f"Bad Request: there is no {field} in the request"
        return _upload_source(kind, part)
    if value.startswith(("http://", "https://")):
        return _url_source(kind, value)
    return resolve_file_id(registry, value, kind, bot_id)


def resolve_file_id(
    registry: FileRegistry, value: str, kind: str, bot_id: int
) -> MediaSource | str:
    """A file_id of this bot's usable as ``kind``, or the Bot API's refusal."""
    record = registry.lookup(value)
    if record is None or record.bot_id != bot_id:
        return WRONG_FILE
    if (record.kind == "photo") != (kind == "photo"):
        return f"Bad Request: can't use file of type {_TD_TYPES[record.kind]} as {_TD_TYPES[kind]}"
    return MediaSource(
        "file_id", record.digest, record.size, record.file_name, record.mime_type, record=record
    )


def url_failure(source: MediaSource, kind: str) -> str | None:
    """Why Telegram's fetch of a URL source fails (its Bot API description), if it does:
    hosts under ``.invalid`` cannot be fetched, and documents by URL must be .gif, .pdf or
    .zip files."""
    if source.url is None:
        return None
    parts = urlsplit(source.url)
    host = (parts.hostname or "").rstrip(".").lower()
    if not host or host == "invalid" or host.endswith(".invalid"):
        return URL_FAILED
    if kind == "document" and not parts.path.lower().endswith(DOCUMENT_URL_SUFFIXES):
        return URL_WRONG_TYPE
    return None


def mtproto_error(description: str) -> str:
    """The server's own error code behind a URL failure: what an album item reports."""
    return "WEBPAGE_CURL_FAILED" if description == URL_FAILED else "WEBPAGE_MEDIA_EMPTY"

"""Where a file named on the command line or in a batch file comes from.

``--photo VALUE`` (and a ``photo`` column) take one spelling for the three sources: an
http(s) URL goes to Telegram as a URL, an existing local file is uploaded through
``UploadFile`` first, and anything else that looks like a Telegram file_id is sent as one.
A value that is neither but looks like a path is an error ("no such file"), not a file_id
Telegram would refuse much later.
"""

from __future__ import annotations

import mimetypes
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from notigate_client import NotificationClient, media, pb
from notigate_client.media import MEDIA_KINDS

__all__ = ["AlbumEntry", "Uploads", "classify", "guess_kind", "parse_album_entry", "resolve"]

SourceKind = Literal["url", "file_id", "path"]
# Telegram's file_ids are URL-safe base64 (the gateway checks the same pattern).
_FILE_ID = re.compile(r"[A-Za-z0-9_-]{1,512}")
_URL_PREFIXES = ("http://", "https://")
# How an album item's kind is guessed from its name when it has no KIND: prefix.
_KIND_OF_TYPE = {"image": "photo", "video": "video", "audio": "audio"}


def classify(value: str, base: Path | None = None) -> tuple[SourceKind, str]:
    """``("url" | "file_id" | "path", value)``; a path is resolved against ``base``.

    Raises:
        ValueError: ``value`` is empty, or looks like a path but no such file exists.
    """
    text = value.strip()
    if not text:
        raise ValueError("empty: give a file path, an http(s) URL or a file_id")
    if text.lower().startswith(_URL_PREFIXES):
        return "url", text
    path = Path(text).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    if path.is_file():
        return "path", str(path)
    if _FILE_ID.fullmatch(text) and not path.exists():
        return "file_id", text
    what = "not a regular file" if path.exists() else "no such file"
    raise ValueError(f"{text}: {what} (and neither an http(s) URL nor a file_id)")


def guess_kind(value: str, default: str = "photo") -> str:
    """The media kind a file's name suggests (photo, video, audio, else document);
    ``default`` when the name says nothing (a file_id)."""
    guessed, _ = mimetypes.guess_type(value.split("?", 1)[0])
    if guessed is None:
        return default
    return _KIND_OF_TYPE.get(guessed.split("/", 1)[0], "document")


@dataclass(frozen=True, slots=True)
class AlbumEntry:
    """One ``--album`` value: ``[KIND:]SOURCE``."""

    kind: str
    source: str


def parse_album_entry(text: str) -> AlbumEntry:
    """``video:clip.mp4`` -> video; ``a.jpg`` -> the kind its name suggests (photo when it
    suggests nothing)."""
    prefix, sep, rest = text.partition(":")
    if sep and prefix.lower() in MEDIA_KINDS:
        return AlbumEntry(prefix.lower(), rest)
    return AlbumEntry(guess_kind(text), text)


@dataclass
class Uploads:
    """Uploads each distinct local file once per command and remembers its upload_id."""

    client: NotificationClient
    report: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr))
    # The bot whose messages use the files (None: the client's).
    bot: str | None = None
    _ids: dict[str, str] = field(default_factory=dict)

    def upload_id(self, path: str) -> str:
        """The upload_id of ``path``, uploading it on first use."""
        key = str(Path(path).resolve())
        if key not in self._ids:
            reply = self.client.upload_file(path, bot=self.bot)
            self._ids[key] = reply.upload_id
            self.report(f"uploaded {path}: {reply.size:,} bytes, upload {reply.upload_id}")
        return self._ids[key]

    def __len__(self) -> int:
        return len(self._ids)


def resolve(
    kind: str,
    value: str,
    uploads: Uploads,
    *,
    has_spoiler: bool = False,
    show_caption_above_media: bool = False,
) -> pb.Media:
    """The Media for one command-line value, uploading a local file first.

    Raises:
        ValueError: see :func:`classify`.
    """
    source, text = classify(value)
    out = media(
        kind,
        url=text if source == "url" else None,
        file_id=text if source == "file_id" else None,
        upload_id=uploads.upload_id(text) if source == "path" else None,
    )
    out.has_spoiler = has_spoiler
    out.show_caption_above_media = show_caption_above_media
    return out

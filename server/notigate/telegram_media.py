"""Bot API requests for media, albums, edits and deletes, and what their answers say.

Pure functions: a stored request (and the files resolved for it) in, the method and its
parameters out; an answer's ``result`` in, message ids and file_ids out. The sender posts
them (:class:`notigate.sender.TelegramSender`).

Strings are never handed to python-telegram-bot's file parsing: it reads a string that
names a local file from the gateway's own disk and uploads it. A URL or file_id goes to
Telegram as the string it is; only uploaded bytes become an ``InputFile``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from telegram import InputFile
from telegram.request._requestparameter import RequestParameter

from notigate.answers import RETRY_IN_TEXT, is_unreachable
from notigate.media import KINDS
from notigate.outcomes import PermanentError, RateLimited, TransientError, Unreachable
from notigate.parse_modes import PARSE_MODE_NAMES
from notigate_client import pb

__all__ = [
    "EDIT_CAPTION",
    "EDIT_MARKUP",
    "EDIT_MEDIA",
    "EDIT_TEXT",
    "Content",
    "Resolved",
    "album_failure",
    "album_parameter",
    "file_ids_of",
    "input_media",
    "is_deleted_already",
    "is_not_modified",
    "media_parameter",
    "media_parameters",
]

EDIT_TEXT = "editMessageText"
EDIT_CAPTION = "editMessageCaption"
EDIT_MEDIA = "editMessageMedia"
EDIT_MARKUP = "editMessageReplyMarkup"

# "Bad Request: failed to send message #2 with the error message "..."" (Telegram's
# server capitalises "Failed" in some versions).
_ALBUM_ITEM_FAILED = re.compile(
    r'failed to send message #(\d+) with the error message "(.*)"', re.IGNORECASE | re.DOTALL
)
_NOT_MODIFIED = "message is not modified"
_DELETED_ALREADY = "message to delete not found"
# An album item's error that another attempt may not meet: Telegram's side failed.
_TRANSIENT = re.compile(
    r"^(Internal Server Error|Bad Gateway|Service Unavailable|Gateway Timeout|5\d\d\b)"
    r"|timed? ?out",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Content:
    """An uploaded file's bytes, as the sender posts them."""

    data: bytes
    filename: str
    content_type: str = ""
    # The content's digest: Telegram's file_id for it is kept under it.
    sha256: str = ""


# What an upload_id resolves to before a send: Telegram's file_id (reused) or the bytes.
Resolved = Mapping[str, "str | Content"]


def _source(media: pb.Media, files: Resolved, attach: bool) -> str | InputFile:
    which = media.WhichOneof("source")
    if which == "url":
        return media.url
    if which == "file_id":
        return media.file_id
    resolved = files[media.upload_id]
    if isinstance(resolved, str):
        return resolved
    return InputFile(
        resolved.data, filename=media.filename or resolved.filename or None, attach=attach
    )


def _caption(text: str, parse_mode: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if text:
        out["caption"] = text
        mode = PARSE_MODE_NAMES.get(parse_mode)
        if mode:
            out["parse_mode"] = mode
    return out


def _visual(media: pb.Media) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if media.has_spoiler:
        out["has_spoiler"] = True
    if media.show_caption_above_media:
        out["show_caption_above_media"] = True
    return out


def media_parameters(
    media: pb.Media, caption: str, parse_mode: int, files: Resolved
) -> tuple[str, list[RequestParameter]]:
    """sendPhoto (…Document, Video, …) for one file: the method and its file/caption
    parameters (the caller adds chat, markup and the delivery options)."""
    info = KINDS[media.kind]
    source = _source(media, files, attach=False)
    params = [RequestParameter.from_input(info.name, source)]
    fields = {**_caption(caption, parse_mode), **_visual(media)}
    params += [RequestParameter.from_input(k, v) for k, v in fields.items()]
    return info.method, params


def input_media(
    media: pb.Media, caption: str, parse_mode: int, files: Resolved
) -> tuple[dict[str, Any], list[InputFile]]:
    """One InputMedia object (an album item, or editMessageMedia's media) as JSON, and the
    file it attaches (if uploaded)."""
    info = KINDS[media.kind]
    source = _source(media, files, attach=True)
    item: dict[str, Any] = {"type": info.name, **_caption(caption, parse_mode), **_visual(media)}
    if isinstance(source, InputFile):
        item["media"] = source.attach_uri
        return item, [source]
    item["media"] = source
    return item, []


def album_parameter(
    items: Sequence[pb.MediaGroupItem], parse_mode: int, files: Resolved
) -> RequestParameter:
    """sendMediaGroup's ``media``: the items as InputMedia, their uploads attached."""
    values: list[dict[str, Any]] = []
    attached: list[InputFile] = []
    for item in items:
        value, uploads = input_media(item.media, item.caption, parse_mode, files)
        values.append(value)
        attached += uploads
    return RequestParameter("media", values, attached or None)


def media_parameter(
    media: pb.Media, caption: str, parse_mode: int, files: Resolved
) -> RequestParameter:
    """editMessageMedia's ``media``."""
    value, uploads = input_media(media, caption, parse_mode, files)
    return RequestParameter("media", value, uploads or None)


def _file_id(message: Any, field: str) -> str | None:
    if not isinstance(message, dict):
        return None
    obj = message.get(field)
    if isinstance(obj, list):
        # Photos come in several sizes, the largest last: that one is the photo sent.
        obj = obj[-1] if obj else None
    if isinstance(obj, dict) and isinstance(obj.get("file_id"), str):
        return str(obj["file_id"])
    return None


def file_ids_of(messages: Sequence[Any], kinds: Sequence[int]) -> list[str | None]:
    """Telegram's file_id of each sent item (None where the answer has none)."""
    return [
        _file_id(message, KINDS[kind].result_field)
        for message, kind in zip(messages, kinds, strict=False)
    ]


def album_failure(
    description: str, already_sent: int
) -> tuple[int, RateLimited | PermanentError | TransientError | Unreachable] | None:
    """A "failed to send message #k" answer to sendMediaGroup: how many items are in the
    chat now (counted from the album's first) and what befell item #k; None for any other
    error (nothing of the album was sent)."""
    found = _ALBUM_ITEM_FAILED.search(description)
    if found is None:
        return None
    sent = already_sent + int(found.group(1)) - 1
    inner = found.group(2)
    wait = RETRY_IN_TEXT.search(inner)
    if wait is not None:
        return sent, RateLimited(float(max(1, int(wait.group(1)))))
    if _TRANSIENT.search(inner):
        return sent, TransientError(description)
    if is_unreachable(inner):
        # The chat refused the item (blocked meanwhile): the chat is suppressed, as after
        # a plain 403.
        return sent, Unreachable(inner)
    # Anything else (a bad URL, "WEBPAGE_CURL_FAILED", a wrong file) fails the same way
    # on every attempt.
    return sent, PermanentError(description)


def is_not_modified(description: str) -> bool:
    """An edit that changes nothing: the message already shows what was asked."""
    return _NOT_MODIFIED in description


def is_deleted_already(description: str) -> bool:
    """A delete of a message that is gone (deleted in the chat, or by an earlier attempt
    whose answer was lost): what was asked is done."""
    return _DELETED_ALREADY in description

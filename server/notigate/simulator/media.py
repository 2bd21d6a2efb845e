"""The media a simulated message carries, and InputMedia objects (albums, editMessageMedia).

The simulator never decodes images or videos: a photo gets four nominal sizes (largest
last, as Telegram orders them), a video its sender's width, height and duration (0 when not
given).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from notigate.simulator.files import FileRecord, FileRegistry, MediaSource, resolve_media
from notigate.simulator.validate import MAX_CAPTION, check_parse_mode, check_text
from notigate.simulator.wire import FilePart

__all__ = [
    "ALBUM_KINDS",
    "InputMediaItem",
    "caption_fields",
    "media_fields",
    "parse_input_media",
    "resolve_item",
]

# Nominal photo sizes Telegram makes of an upload (s, m, x, y), smallest first.
_PHOTO_SIZES = ((90, 68), (320, 240), (800, 600), (1280, 960))
ALBUM_KINDS = frozenset({"photo", "video", "document", "audio"})
_EDIT_KINDS = ALBUM_KINDS | {"animation"}


def _int(options: dict[str, Any], name: str) -> int:
    value = options.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _file(record: FileRecord, size_index: int = 0) -> dict[str, Any]:
    return {
        "file_id": record.file_id(size_index),
        "file_unique_id": record.unique_id(size_index),
        "file_size": record.size,
    }


def media_fields(
    registry: FileRegistry, kind: str, bot_id: int, source: MediaSource, options: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """The Message fields of ``kind`` media from ``source`` (and the issued file_id);
    ``options`` are the send's parameters or the InputMedia object (width, duration...)."""
    sizes = len(_PHOTO_SIZES) if kind == "photo" else 1
    record = registry.issue(kind, bot_id, source, sizes)
    if kind == "photo":
        largest = _PHOTO_SIZES[-1][0] * _PHOTO_SIZES[-1][1]
        photo = []
        for index, (width, height) in enumerate(_PHOTO_SIZES):
            size = _file(record, index)
            size["file_size"] = max(1, record.size * width * height // largest)
            size["width"], size["height"] = width, height
            photo.append(size)
        return {"photo": photo}, photo[-1]["file_id"]
    media = _file(record)
    if kind != "voice" and record.file_name:
        media["file_name"] = record.file_name
    if record.mime_type:
        media["mime_type"] = record.mime_type
    if kind in ("video", "animation"):
        media["width"], media["height"] = _int(options, "width"), _int(options, "height")
    if kind in ("video", "animation", "audio", "voice"):
        media["duration"] = _int(options, "duration")
    if kind == "audio":
        for name in ("performer", "title"):
            value = options.get(name)
            if isinstance(value, str) and value:
                media[name] = value
    fields = {kind: media}
    if kind == "animation":
        # Telegram's animation messages also carry the file as a document.
        document = {k: media[k] for k in ("file_id", "file_unique_id", "file_size")}
        for name in ("file_name", "mime_type"):
            if name in media:
                document[name] = media[name]
        fields["document"] = document
    return fields, media["file_id"]


def caption_fields(kind: str, caption: str, options: dict[str, Any]) -> dict[str, Any]:
    """A media message's caption, spoiler and caption placement fields."""
    fields: dict[str, Any] = {}
    if caption:
        fields["caption"] = caption
    if kind in ("photo", "video", "animation"):
        if options.get("show_caption_above_media") is True:
            fields["show_caption_above_media"] = True
        if options.get("has_spoiler") is True:
            fields["has_media_spoiler"] = True
    return fields


@dataclass(frozen=True, slots=True)
class InputMediaItem:
    """One parsed InputMedia object."""

    kind: str
    media: Any
    caption: str
    parse_mode: str | None
    show_caption_above_media: bool
    options: dict[str, Any]


def _parse_error(reason: str) -> str:
    return f"Bad Request: can't parse InputMedia: {reason}"


def parse_input_media(value: Any, *, for_album: bool) -> InputMediaItem | str:
    """Parse one InputMedia object as the Bot API does, or return its refusal."""
    if not isinstance(value, dict):
        return _parse_error("expected an Object")
    caption = value.get("caption")
    caption = caption if isinstance(caption, str) else ""
    mode, problem = check_parse_mode(value)
    if problem is None:
        problem = check_text(caption, mode, limit=MAX_CAPTION, empty_error=None)
    if problem is not None:
        return problem
    kind = value.get("type")
    if not isinstance(kind, str):
        return _parse_error('Can\'t find field "type"')
    if kind == "animation" and for_album:
        return _parse_error('type "animation" can\'t be used in sendMediaGroup')
    if kind not in _EDIT_KINDS:
        return _parse_error(f'type "{kind}" is unsupported')
    media = value.get("media")
    if not isinstance(media, str) or not media:
        return _parse_error("media not found")
    above = value.get("show_caption_above_media") is True
    return InputMediaItem(kind, media, caption, mode, above, value)


def resolve_item(
    registry: FileRegistry, item: InputMediaItem, bot_id: int, params: dict[str, Any]
) -> MediaSource | str:
    """The file an InputMedia object points at (see :func:`resolve_media`)."""
    media = item.media
    if media.startswith("attach://") and not isinstance(
        params.get(media[len("attach://") :]), FilePart
    ):
        return _parse_error("media not found")
    return resolve_media(registry, media, item.kind, bot_id, params, field=item.kind)

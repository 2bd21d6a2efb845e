"""What a message carries besides text: the media kinds, their Bot API names, albums.

One table (:data:`KINDS`) says, for each :class:`~notigate_client.pb.MediaKind`, the Bot API
method that sends it, the parameter and ``InputMedia`` type that carry the file, the field of
the answer's Message that holds Telegram's file_id, and what Telegram allows of it (albums,
spoilers). Validation, the sender and the upload bookkeeping all read it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from notigate_client import pb

__all__ = [
    "ALBUM_MAX",
    "ALBUM_MIN",
    "KINDS",
    "MAX_CAPTION_CHARS",
    "PHOTO_UPLOAD_MAX_BYTES",
    "MediaKindInfo",
    "album_kinds_problem",
    "media_paths",
    "upload_ids",
    "upload_kinds",
    "weight",
]

MAX_CAPTION_CHARS = 1024
ALBUM_MIN, ALBUM_MAX = 2, 10
# Telegram's multipart limit for photos (python-telegram-bot's FileSizeLimit.PHOTOSIZE_UPLOAD).
PHOTO_UPLOAD_MAX_BYTES = 10_000_000


@dataclass(frozen=True, slots=True)
class MediaKindInfo:
    """How Telegram handles one kind of media."""

    # The name in the API's enum and in the Bot API: "photo", "document", ...
    name: str
    method: str
    # The answer's Message field holding the file (photo: a list of sizes, largest last).
    result_field: str
    # May be an album item; documents and audios only among their own kind.
    in_albums: bool
    groups_alone: bool
    # has_spoiler and show_caption_above_media apply.
    visual: bool


KINDS: dict[int, MediaKindInfo] = {
    pb.MEDIA_KIND_PHOTO: MediaKindInfo("photo", "sendPhoto", "photo", True, False, True),
    pb.MEDIA_KIND_DOCUMENT: MediaKindInfo(
        "document", "sendDocument", "document", True, True, False
    ),
    pb.MEDIA_KIND_VIDEO: MediaKindInfo("video", "sendVideo", "video", True, False, True),
    pb.MEDIA_KIND_ANIMATION: MediaKindInfo(
        "animation", "sendAnimation", "animation", False, False, True
    ),
    pb.MEDIA_KIND_AUDIO: MediaKindInfo("audio", "sendAudio", "audio", True, True, False),
    pb.MEDIA_KIND_VOICE: MediaKindInfo("voice", "sendVoice", "voice", False, False, False),
}


def media_paths(request: pb.SendRequest) -> Iterator[tuple[str, pb.Media]]:
    """Every file of the message with its field path (``media``,
    ``media_group.items[2].media``)."""
    if request.HasField("media"):
        yield "media", request.media
    elif request.HasField("media_group"):
        for i, item in enumerate(request.media_group.items):
            yield f"media_group.items[{i}].media", item.media


def upload_kinds(request: pb.SendRequest) -> tuple[tuple[str, int], ...]:
    """Each upload the message references with the media kind it goes as, each once,
    in order."""
    seen: dict[str, int] = {}
    for _, media in media_paths(request):
        if media.WhichOneof("source") == "upload_id":
            seen.setdefault(media.upload_id, media.kind)
    return tuple(seen.items())


def upload_ids(request: pb.SendRequest) -> tuple[str, ...]:
    """The uploads the message references, each once, in order."""
    return tuple(upload_id for upload_id, _ in upload_kinds(request))


def weight(request: pb.SendRequest) -> int:
    """How many messages Telegram counts for it in its limits: an album's items."""
    if request.HasField("media_group"):
        return max(1, len(request.media_group.items))
    return 1


def album_kinds_problem(kinds: list[int]) -> str | None:
    """Telegram's grouping rule for an album of these kinds, or None when it holds."""
    for kind in set(kinds):
        info = KINDS.get(kind)
        if info is not None and info.groups_alone and any(k != kind for k in kinds):
            return f"{info.name}s can be grouped only with other {info.name}s"
    return None

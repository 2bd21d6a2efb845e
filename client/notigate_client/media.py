"""Building the ``Media`` and ``MediaGroup`` messages of a media send or edit.

One builder per Telegram message type names where the file comes from, exactly one of
``url`` (Telegram downloads it), ``file_id`` (a file Telegram already has for this bot) or
``upload_id`` (a file stored through ``UploadFile``; the client's ``upload_file`` answer
may be passed as it is)::

    client.send(chat, "Invoice 42", media=document(upload_id=client.upload_file("42.pdf")))
    client.send(chat, "", media_group=[photo(url=a), item(photo(url=b), "second")])

Limits (caption length, album size, which kinds mix) are the server's to check.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal, Protocol, TypeAlias

from notigate_client._proto.notigate.v1 import notification_pb2 as pb

__all__ = [
    "MEDIA_KINDS",
    "FileBuilder",
    "MediaGroupLike",
    "MediaKindLike",
    "VisualBuilder",
    "animation",
    "audio",
    "document",
    "item",
    "media",
    "media_group",
    "media_kind",
    "photo",
    "video",
    "voice",
]

MediaKindLike: TypeAlias = (
    "pb.MediaKind.ValueType | Literal['photo', 'document', 'video', 'animation', 'audio', 'voice']"
)
# An album as a MediaGroup, or its items (a bare Media is an item without a caption).
MediaGroupLike: TypeAlias = "pb.MediaGroup | Sequence[pb.MediaGroupItem | pb.Media]"
UploadRef: TypeAlias = "str | pb.UploadFileResponse"

_KIND_PREFIX = "MEDIA_KIND_"
# The kinds by the names the CLI and batch files use ("photo" ... "voice").
MEDIA_KINDS: dict[str, pb.MediaKind.ValueType] = {
    pb.MediaKind.Name(v).removeprefix(_KIND_PREFIX).lower(): v for v in pb.MediaKind.values() if v
}


def media_kind(kind: MediaKindLike | str) -> pb.MediaKind.ValueType:
    """The MediaKind value for an enum value or a name (``"photo"``, ``"MEDIA_KIND_PHOTO"``,
    any case)."""
    if not isinstance(kind, str):
        return kind
    name = kind.strip().lower().removeprefix(_KIND_PREFIX.lower())
    try:
        return MEDIA_KINDS[name]
    except KeyError:
        raise ValueError(f"unknown media kind {kind!r} (one of {', '.join(MEDIA_KINDS)})") from None


def media(
    kind: MediaKindLike | str,
    *,
    url: str | None = None,
    file_id: str | None = None,
    upload_id: UploadRef | None = None,
    filename: str = "",
    has_spoiler: bool = False,
    show_caption_above_media: bool = False,
) -> pb.Media:
    """A file of ``kind`` from exactly one of ``url``, ``file_id`` and ``upload_id``.

    ``filename`` overrides the name Telegram shows for an upload; ``has_spoiler`` and
    ``show_caption_above_media`` apply to photos, videos and animations.
    """
    sources = {"url": url, "file_id": file_id, "upload_id": upload_id}
    given = [name for name, value in sources.items() if value is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of url, file_id and upload_id (got {len(given)})")
    out = pb.Media(
        kind=media_kind(kind),
        filename=filename,
        has_spoiler=has_spoiler,
        show_caption_above_media=show_caption_above_media,
    )
    if url is not None:
        out.url = url
    elif file_id is not None:
        out.file_id = file_id
    elif upload_id is not None:
        out.upload_id = (
            upload_id.upload_id if isinstance(upload_id, pb.UploadFileResponse) else upload_id
        )
    return out


class VisualBuilder(Protocol):
    """Builds a photo, video or animation (they take the display options)."""

    def __call__(
        self,
        *,
        url: str | None = None,
        file_id: str | None = None,
        upload_id: UploadRef | None = None,
        filename: str = "",
        has_spoiler: bool = False,
        show_caption_above_media: bool = False,
    ) -> pb.Media: ...


class FileBuilder(Protocol):
    """Builds a document, audio or voice message."""

    def __call__(
        self,
        *,
        url: str | None = None,
        file_id: str | None = None,
        upload_id: UploadRef | None = None,
        filename: str = "",
    ) -> pb.Media: ...


def _visual(kind: pb.MediaKind.ValueType, doc: str) -> VisualBuilder:
    def build(
        *,
        url: str | None = None,
        file_id: str | None = None,
        upload_id: UploadRef | None = None,
        filename: str = "",
        has_spoiler: bool = False,
        show_caption_above_media: bool = False,
    ) -> pb.Media:
        return media(
            kind,
            url=url,
            file_id=file_id,
            upload_id=upload_id,
            filename=filename,
            has_spoiler=has_spoiler,
            show_caption_above_media=show_caption_above_media,
        )

    build.__doc__ = doc
    return build


def _file(kind: pb.MediaKind.ValueType, doc: str) -> FileBuilder:
    def build(
        *,
        url: str | None = None,
        file_id: str | None = None,
        upload_id: UploadRef | None = None,
        filename: str = "",
    ) -> pb.Media:
        return media(kind, url=url, file_id=file_id, upload_id=upload_id, filename=filename)

    build.__doc__ = doc
    return build


photo = _visual(pb.MEDIA_KIND_PHOTO, "A photo (sendPhoto): JPEG, PNG or WebP.")
video = _visual(pb.MEDIA_KIND_VIDEO, "A video (sendVideo): MPEG4.")
animation = _visual(
    pb.MEDIA_KIND_ANIMATION, "An animation (sendAnimation): GIF or soundless MPEG4."
)
document = _file(pb.MEDIA_KIND_DOCUMENT, "A document (sendDocument): any file.")
audio = _file(pb.MEDIA_KIND_AUDIO, "An audio file for the music player (sendAudio): MP3 or M4A.")
voice = _file(pb.MEDIA_KIND_VOICE, "A voice message (sendVoice): OGG/OPUS, MP3 or M4A.")


def item(file: pb.Media, caption: str = "") -> pb.MediaGroupItem:
    """One album item with its own caption (parsed with the send's parse_mode)."""
    return pb.MediaGroupItem(media=file, caption=caption)


def media_group(items: MediaGroupLike | Iterable[pb.MediaGroupItem | pb.Media]) -> pb.MediaGroup:
    """An album of ``items``; a bare Media is an item without a caption."""
    if isinstance(items, pb.MediaGroup):
        return items
    return pb.MediaGroup(
        items=[item(i) if isinstance(i, pb.Media) else i for i in items],
    )

"""What each chat shows now: every message the simulator sent, as edits and deletes left it.

A media message keeps the Message object its send returned as its current content. A text
message (the benchmarks' hot path) keeps only the :class:`SentMessage` already recorded for
it, so a send adds a dict entry and no object for the garbage collector to track; its
Message object is rebuilt from that record the first time it is edited, deleted or looked
at. Kinds, captions and file ids are read from the Message object when someone asks
(:meth:`StoredMessage.record`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from notigate.simulator.records import MessageRecord, SentMessage

__all__ = ["ChatHistory", "StoredMessage", "message_file_id", "message_kind"]

# Animation first: Telegram sets ``document`` on animation messages too.
_MEDIA_KINDS = ("animation", "photo", "video", "audio", "voice", "document")


def message_kind(message: dict[str, Any]) -> str:
    """ "text", or the media kind of a Message object."""
    if "text" in message:
        return "text"
    for kind in _MEDIA_KINDS:
        if kind in message:
            return kind
    return "text"


def message_file_id(message: dict[str, Any], kind: str | None = None) -> str | None:
    """The file_id of a Message's media (a photo's largest size), if it has media."""
    kind = message_kind(message) if kind is None else kind
    media = message.get(kind)
    if isinstance(media, list):
        media = media[-1] if media else None
    if isinstance(media, dict):
        file_id = media.get("file_id")
        return file_id if isinstance(file_id, str) else None
    return None


class StoredMessage:
    """One sent message's current state (mutable: edits replace ``message``)."""

    __slots__ = ("bot_id", "chat_id", "deleted", "edits", "entities", "message", "parse_mode")

    def __init__(
        self,
        bot_id: int,
        chat_id: str,
        message: dict[str, Any],
        parse_mode: str | None,
        entities: Any = None,
    ) -> None:
        self.bot_id = bot_id
        self.chat_id = chat_id
        self.message = message
        # The text's or caption's markup as sent, for telling whether an edit changes it.
        self.parse_mode = parse_mode
        self.entities = entities
        self.edits = 0
        self.deleted = False

    @property
    def kind(self) -> str:
        """ "text" or the media kind."""
        return message_kind(self.message)

    @property
    def date(self) -> int:
        """When it was sent (simulated wall clock, Unix seconds)."""
        return int(self.message["date"])

    def record(self) -> MessageRecord:
        """A snapshot for tests and the control endpoints."""
        message = self.message
        kind = message_kind(message)
        text = message.get("text") if kind == "text" else message.get("caption")
        markup = message.get("reply_markup")
        edit_date = message.get("edit_date")
        return MessageRecord(
            chat_id=self.chat_id,
            message_id=int(message["message_id"]),
            bot_id=self.bot_id,
            kind=kind,
            text=text if isinstance(text, str) else "",
            file_id=message_file_id(message, kind),
            reply_markup=markup if isinstance(markup, dict) else None,
            media_group_id=message.get("media_group_id"),
            date=int(message["date"]),
            edit_date=int(edit_date) if isinstance(edit_date, int) else None,
            edit_count=self.edits,
            deleted=self.deleted,
            message=message,
        )


class ChatHistory:
    """Sent messages by chat key and message id; ``rebuild`` makes the stored state of a
    text message from its send record."""

    __slots__ = ("_chats", "_rebuild")

    def __init__(self, rebuild: Callable[[SentMessage], StoredMessage]) -> None:
        self._chats: dict[str, dict[int, StoredMessage | SentMessage]] = {}
        self._rebuild = rebuild

    def add(self, chat_key: str, message_id: int, entry: StoredMessage | SentMessage) -> None:
        """Remember a sent message (a text message by its send record)."""
        chat = self._chats.get(chat_key)
        if chat is None:
            chat = self._chats[chat_key] = {}
        chat[message_id] = entry

    def get(self, chat_key: str, message_id: int) -> StoredMessage | None:
        """The message, deleted or not."""
        chat = self._chats.get(chat_key)
        if chat is None:
            return None
        entry = chat.get(message_id)
        if isinstance(entry, SentMessage):
            entry = chat[message_id] = self._rebuild(entry)
        return entry

    def chat(self, chat_key: str) -> list[StoredMessage]:
        """Every message sent to the chat, by message id."""
        chat = self._chats.get(chat_key, {})
        found = (self.get(chat_key, k) for k in sorted(chat))
        return [m for m in found if m is not None]

    def clear(self) -> None:
        """Forget every message."""
        self._chats.clear()

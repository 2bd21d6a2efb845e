"""Message objects as the Bot API returns them: the parts every sent message shares."""

from __future__ import annotations

from typing import Any

from notigate.simulator.wire import ChatRef

__all__ = ["markup_of", "message_base", "text_fields"]


def message_base(
    user: dict[str, Any], chat: ChatRef, params: dict[str, Any], message_id: int, date: float
) -> dict[str, Any]:
    """A Message's id, sender, chat, date and forum topic."""
    message: dict[str, Any] = {
        "message_id": message_id,
        "from": user,
        "chat": chat.as_dict(),
        "date": int(date),
    }
    thread_id = params.get("message_thread_id")
    if chat.type == "supergroup" and isinstance(thread_id, int) and thread_id:
        message["message_thread_id"] = thread_id
        message["is_topic_message"] = True
    return message


def text_fields(params: dict[str, Any], text: str) -> dict[str, Any]:
    """A text message's ``text`` and ``link_preview_options``."""
    fields: dict[str, Any] = {"text": text}
    preview = params.get("link_preview_options")
    if isinstance(preview, dict):
        fields["link_preview_options"] = preview
    return fields


def markup_of(params: dict[str, Any]) -> dict[str, Any] | None:
    """The inline keyboard of a request (other reply markup does not stay on a message)."""
    markup = params.get("reply_markup")
    return markup if isinstance(markup, dict) and "inline_keyboard" in markup else None

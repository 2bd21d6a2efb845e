"""editMessageText, editMessageCaption, editMessageMedia, editMessageReplyMarkup,
deleteMessage and deleteMessages, by chat_id and message_id.

A bot edits and deletes only messages it sent that are not deleted; anything else is
"message to edit not found" / "message to delete not found". An edit that would leave the
content and the inline keyboard exactly as they are is refused as Telegram refuses it
(texts and captions compared after entity parsing); an edit without ``reply_markup``
removes the keyboard, as on Telegram. A message older than 48 hours by the simulated wall
clock (see :meth:`~SimulatorState.advance_clock`) can't be deleted.

Edits and deletes take a slot of the rate windows like a send: Telegram's limits for them
are not documented, and counting them is the conservative choice for a gateway that must
not exceed whatever they are (deleteMessages takes one slot for the request).
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from notigate import formatting
from notigate.simulator.files import url_failure
from notigate.simulator.history import StoredMessage, message_kind
from notigate.simulator.media import (
    ALBUM_KINDS,
    caption_fields,
    media_fields,
    parse_input_media,
    resolve_item,
)
from notigate.simulator.messages import markup_of
from notigate.simulator.pipeline import Target, admit, fail, finish, open_request
from notigate.simulator.state import Fault, SimulatorState
from notigate.simulator.validate import MAX_CAPTION, MAX_TEXT, check_parse_mode, check_text

__all__ = [
    "DELETE_WINDOW_S",
    "delete_message",
    "delete_messages",
    "edit_message_caption",
    "edit_message_media",
    "edit_message_reply_markup",
    "edit_message_text",
]

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
EDIT_NOT_FOUND = "Bad Request: message to edit not found"
DELETE_NOT_FOUND = "Bad Request: message to delete not found"
NO_MESSAGE_ID = "Bad Request: message identifier is not specified"
# Bots may delete messages sent less than 48 hours ago.
DELETE_WINDOW_S = 48 * 3600
_MAX_DELETE_IDS = 100
# Message fields an edit of the media replaces.
_MEDIA_FIELDS = (
    "photo",
    "document",
    "video",
    "animation",
    "audio",
    "voice",
    "caption",
    "caption_entities",
    "show_caption_above_media",
    "has_media_spoiler",
)

Edit = tuple[dict[str, Any], str | None, Any]


def _message_id(params: dict[str, Any]) -> int:
    value = params.get("message_id")
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _visible(text: str, mode: str | None, entities: Any) -> tuple[Any, ...]:
    """A text or caption as Telegram stores it, for telling edits that change nothing."""
    try:
        parsed = formatting.parse(text, mode)
    except (formatting.EntityParseError, ValueError):
        return (text, mode, entities)
    return (parsed.text, tuple(parsed.entities), entities)


def _find(
    state: SimulatorState, token: str, target: Target, message_id: int, missing: str
) -> StoredMessage | str:
    stored = state.history.get(target.chat.key, message_id) if message_id > 0 else None
    if stored is None or stored.deleted or stored.bot_id != state.bot_id(token):
        return missing
    return stored


def _edit(
    state: SimulatorState,
    token: str,
    params: dict[str, Any],
    method: str,
    check: Any,
) -> web.Response:
    """The pipeline of the edit methods: ``check(stored)`` returns the new Message object
    with the text's parse mode and entities, or a refusal."""
    now = time.monotonic()
    if params.get("chat_id") in (None, "") and _message_id(params) == 0:
        inline = params.get("inline_message_id")
        problem = NO_MESSAGE_ID if not inline else "Bad Request: MESSAGE_ID_INVALID"
        return fail(state, method, None, now, Fault(400, problem))
    target = open_request(state, method, params, now)
    if not isinstance(target, Target):
        return target
    stored = _find(state, token, target, _message_id(params), EDIT_NOT_FOUND)
    if isinstance(stored, str):
        return fail(state, method, target.chat_id, now, Fault(400, stored))
    edited = check(stored)
    if isinstance(edited, str):
        return fail(state, method, target.chat_id, now, Fault(400, edited))
    refused = admit(state, token, method, target, params, now)
    if refused is not None:
        return refused
    message, mode, entities = edited
    markup = markup_of(params)
    if markup is None:
        message.pop("reply_markup", None)
    else:
        message["reply_markup"] = markup
    message["edit_date"] = int(state.wall_time())
    stored.message = message
    stored.parse_mode = mode
    stored.entities = entities
    stored.edits += 1
    state.record(method, target.chat_id, 200, now)
    return finish(target, message)


def _unchanged(stored: StoredMessage, params: dict[str, Any], same_content: bool) -> bool:
    return same_content and markup_of(params) == stored.message.get("reply_markup")


def edit_message_text(state: SimulatorState, token: str, params: dict[str, Any]) -> web.Response:
    """Serve editMessageText."""
    mode, problem = check_parse_mode(params)
    raw = params.get("text")
    text = raw if isinstance(raw, str) else ""
    if problem is None:
        problem = check_text(
            text, mode, limit=MAX_TEXT, empty_error="Bad Request: message text is empty"
        )
    entities = params.get("entities")
    preview = params.get("link_preview_options")

    def check(stored: StoredMessage) -> Edit | str:
        if problem is not None:
            return problem
        old = stored.message
        if stored.kind != "text":
            return "Bad Request: there is no text in the message to edit"
        same = _visible(old.get("text", ""), stored.parse_mode, stored.entities) == _visible(
            text, mode, entities
        ) and old.get("link_preview_options") == (preview if isinstance(preview, dict) else None)
        if _unchanged(stored, params, same):
            return NOT_MODIFIED
        message = dict(old)
        message["text"] = text
        message.pop("link_preview_options", None)
        if isinstance(preview, dict):
            message["link_preview_options"] = preview
        return message, mode, entities

    return _edit(state, token, params, "editMessageText", check)


def edit_message_caption(state: SimulatorState, token: str, params: dict[str, Any]) -> web.Response:
    """Serve editMessageCaption (an empty caption removes it)."""
    mode, problem = check_parse_mode(params)
    raw = params.get("caption")
    caption = raw if isinstance(raw, str) else ""
    if problem is None:
        problem = check_text(caption, mode, limit=MAX_CAPTION, empty_error=None)
    entities = params.get("caption_entities")

    def check(stored: StoredMessage) -> Edit | str:
        if problem is not None:
            return problem
        old = stored.message
        kind = stored.kind
        if kind == "text":
            return "Bad Request: there is no caption in the message to edit"
        fields = caption_fields(kind, caption, params)
        above = fields.get("show_caption_above_media", False)
        same = (
            _visible(old.get("caption", ""), stored.parse_mode, stored.entities)
            == _visible(caption, mode, entities)
            and old.get("show_caption_above_media", False) == above
        )
        if _unchanged(stored, params, same):
            return NOT_MODIFIED
        message = dict(old)
        for name in ("caption", "caption_entities", "show_caption_above_media"):
            message.pop(name, None)
        fields.pop("has_media_spoiler", None)
        message.update(fields)
        return message, mode, entities

    return _edit(state, token, params, "editMessageCaption", check)


def edit_message_media(state: SimulatorState, token: str, params: dict[str, Any]) -> web.Response:
    """Serve editMessageMedia (``media``: one InputMedia, ``attach://`` parts allowed)."""
    media = params.get("media")
    problem: str | None = None
    item = None
    if media is None or media == "":
        problem = 'Bad Request: parameter "media" is required'
    elif isinstance(media, str | list):
        problem = "Bad Request: can't parse input media JSON object"
    else:
        parsed = parse_input_media(media, for_album=False)
        if isinstance(parsed, str):
            problem = parsed
        else:
            item = parsed

    def check(stored: StoredMessage) -> Edit | str:
        if problem is not None or item is None:
            return problem or "Bad Request: can't parse input media JSON object"
        old = stored.message
        old_kind = stored.kind
        if old_kind == "text":
            return "Bad Request: there is no media in the message to edit"
        if "media_group_id" in old and old_kind != item.kind:
            if item.kind not in ALBUM_KINDS:
                return "Bad Request: message content type can't be used in an album"
            if {old_kind, item.kind} & {"document", "audio"}:
                return "Bad Request: can't change media type in the album"
        bot_id = state.bot_id(token)
        source = resolve_item(state.files, item, bot_id, params)
        if isinstance(source, str):
            return source
        failure = url_failure(source, item.kind)
        if failure is not None:
            return failure
        fields, _ = media_fields(state.files, item.kind, bot_id, source, item.options)
        fields.update(caption_fields(item.kind, item.caption, item.options))
        entities = item.options.get("caption_entities")
        same = (
            message_kind(fields) == old_kind
            and _unique_id(fields) == _unique_id(old)
            and _visible(old.get("caption", ""), stored.parse_mode, stored.entities)
            == _visible(item.caption, item.parse_mode, entities)
            and old.get("show_caption_above_media") == fields.get("show_caption_above_media")
        )
        if _unchanged(stored, params, same):
            return NOT_MODIFIED
        message = {k: v for k, v in old.items() if k not in _MEDIA_FIELDS}
        message.update(fields)
        return message, item.parse_mode, entities

    return _edit(state, token, params, "editMessageMedia", check)


def _unique_id(message: dict[str, Any]) -> str | None:
    media = message.get(message_kind(message))
    if isinstance(media, list):
        media = media[-1] if media else None
    return media.get("file_unique_id") if isinstance(media, dict) else None


def edit_message_reply_markup(
    state: SimulatorState, token: str, params: dict[str, Any]
) -> web.Response:
    """Serve editMessageReplyMarkup (no ``reply_markup``: remove the keyboard)."""

    def check(stored: StoredMessage) -> Edit | str:
        if _unchanged(stored, params, True):
            return NOT_MODIFIED
        return dict(stored.message), stored.parse_mode, stored.entities

    return _edit(state, token, params, "editMessageReplyMarkup", check)


def _deletable(state: SimulatorState, stored: StoredMessage) -> bool:
    return state.wall_time() - stored.date < DELETE_WINDOW_S


def delete_message(state: SimulatorState, token: str, params: dict[str, Any]) -> web.Response:
    """Serve deleteMessage."""
    method = "deleteMessage"
    now = time.monotonic()
    target = open_request(state, method, params, now)
    if not isinstance(target, Target):
        return target
    message_id = _message_id(params)
    if message_id == 0:
        return fail(state, method, target.chat_id, now, Fault(400, NO_MESSAGE_ID))
    stored = _find(state, token, target, message_id, DELETE_NOT_FOUND)
    if isinstance(stored, str):
        return fail(state, method, target.chat_id, now, Fault(400, stored))
    if not _deletable(state, stored):
        return fail(
            state, method, target.chat_id, now, Fault(400, "Bad Request: message can't be deleted")
        )
    refused = admit(state, token, method, target, params, now)
    if refused is not None:
        return refused
    stored.deleted = True
    state.record(method, target.chat_id, 200, now)
    return finish(target, True)


def _message_ids(params: dict[str, Any]) -> list[int] | str:
    """The Bot API's reading of ``message_ids`` (1..100 positive ids)."""
    raw = params.get("message_ids")
    if raw is None or raw == "" or raw == []:
        return "Bad Request: message identifiers are not specified"
    if isinstance(raw, str):
        return "Bad Request: can't parse message_ids JSON object"
    if not isinstance(raw, list):
        return "Bad Request: expected an Array of message identifiers"
    if len(raw) > _MAX_DELETE_IDS:
        return "Bad Request: too many message identifiers specified"
    ids: list[int] = []
    for value in raw:
        if isinstance(value, str) and value.lstrip("-").isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            return "Bad Request: message identifier must be a Number"
        if value <= 0:
            return "Bad Request: invalid message identifier specified"
        ids.append(value)
    return ids


def delete_messages(state: SimulatorState, token: str, params: dict[str, Any]) -> web.Response:
    """Serve deleteMessages: ids not found (or not deletable) are skipped."""
    method = "deleteMessages"
    now = time.monotonic()
    target = open_request(state, method, params, now)
    if not isinstance(target, Target):
        return target
    ids = _message_ids(params)
    if isinstance(ids, str):
        return fail(state, method, target.chat_id, now, Fault(400, ids))
    refused = admit(state, token, method, target, params, now)
    if refused is not None:
        return refused
    for message_id in ids:
        stored = _find(state, token, target, message_id, DELETE_NOT_FOUND)
        if not isinstance(stored, str) and _deletable(state, stored):
            stored.deleted = True
    state.record(method, target.chat_id, 200, now)
    return finish(target, True)

"""sendMediaGroup: albums of 2..10 photos/videos, documents or audios.

Checked as the Bot API and TDLib check them, the whole album refused before anything is
sent: every InputMedia (caption, type, ``media``), the count, equal
``show_caption_above_media``, documents and audios kept apart from other media, then each
item's file (attach:// part, file_id of this bot, URL). A single item is refused (the
documented minimum is 2; TDLib itself would send it as a lone message). ``reply_markup`` is
ignored, as Telegram ignores it.

The album is admitted to the rate windows as N sends (see
:mod:`notigate.simulator.limits`) and keeps its N slots even when an item fails: Telegram
counted the request. Items are then sent in order; an item failing at send
time (a URL Telegram cannot fetch, or :meth:`~SimulatorState.fail_album_item`) leaves the
items before it sent and the ones after it unsent, and the answer is Telegram's 400
``Bad Request: failed to send message #k with the error message "<error>"`` (k from 1;
the error of a URL is the server's code, ``WEBPAGE_CURL_FAILED`` or
``WEBPAGE_MEDIA_EMPTY``).
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from notigate.simulator.files import MediaSource, mtproto_error, url_failure
from notigate.simulator.history import StoredMessage
from notigate.simulator.media import (
    InputMediaItem,
    caption_fields,
    media_fields,
    parse_input_media,
    resolve_item,
)
from notigate.simulator.pipeline import Target, admit, fail, finish, new_message, open_request
from notigate.simulator.state import Fault, SimulatorState

__all__ = ["MAX_ALBUM", "MIN_ALBUM", "send_media_group"]

MIN_ALBUM = 2
MAX_ALBUM = 10
_METHOD = "sendMediaGroup"
# Kinds TDLib sends only with their own kind (is_homogenous_media_group_content).
_HOMOGENEOUS = ("document", "audio")


def _check_album(items: list[InputMediaItem]) -> str | None:
    """TDLib's check_message_group_message_contents, and the documented minimum."""
    if len(items) > MAX_ALBUM:
        return "Bad Request: too many messages to send as an album"
    if not items:
        return "Bad Request: there are no messages to send"
    if len(items) < MIN_ALBUM:
        return "Bad Request: wrong number of media items"
    above = items[0].show_caption_above_media
    if any(item.show_caption_above_media != above for item in items):
        return "Bad Request: parameter show_caption_above_media must be the same for all messages"
    kinds = {item.kind for item in items}
    if len(kinds) > 1:
        for item in items:
            if item.kind in _HOMOGENEOUS:
                return f"Bad Request: {item.kind} can't be mixed with other media types"
    return None


def _validate(
    state: SimulatorState, bot_id: int, params: dict[str, Any]
) -> list[tuple[InputMediaItem, MediaSource]] | str:
    media = params.get("media")
    if media is None or media == "":
        return 'Bad Request: parameter "media" is required'
    if isinstance(media, str):
        return "Bad Request: can't parse media JSON object"
    if not isinstance(media, list):
        return "Bad Request: expected an Array of InputMedia"
    items: list[InputMediaItem] = []
    for value in media:
        item = parse_input_media(value, for_album=True)
        if isinstance(item, str):
            return item
        items.append(item)
    problem = _check_album(items)
    if problem is not None:
        return problem
    resolved: list[tuple[InputMediaItem, MediaSource]] = []
    for item in items:
        source = resolve_item(state.files, item, bot_id, params)
        if isinstance(source, str):
            return source
        resolved.append((item, source))
    return resolved


def send_media_group(state: SimulatorState, token: str, params: dict[str, Any]) -> web.Response:
    """Serve sendMediaGroup."""
    now = time.monotonic()
    target = open_request(state, _METHOD, params, now)
    if not isinstance(target, Target):
        return target
    bot_id = state.bot_id(token)
    resolved = _validate(state, bot_id, params)
    if isinstance(resolved, str):
        return fail(state, _METHOD, target.chat_id, now, Fault(400, resolved))
    refused = admit(state, token, _METHOD, target, params, now, count=len(resolved))
    if refused is not None:
        return refused
    scripted = state.take_album_fault(target.chat_id)
    group_id = state.next_media_group_id()
    wall = state.wall_time()
    sent: list[dict[str, Any]] = []
    for position, (item, source) in enumerate(resolved, 1):
        error: str | None = None
        if scripted is not None and scripted[0] == position:
            error = scripted[1]
        else:
            failure = url_failure(source, item.kind)
            if failure is not None:
                error = mtproto_error(failure)
        if error is not None:
            description = (
                f'Bad Request: failed to send message #{position} with the error message "{error}"'
            )
            return fail(state, _METHOD, target.chat_id, now, Fault(400, description))
        sent.append(_send_item(state, token, target, params, item, source, group_id, wall, now))
    state.record(_METHOD, target.chat_id, 200, now)
    return finish(target, sent)


def _send_item(
    state: SimulatorState,
    token: str,
    target: Target,
    params: dict[str, Any],
    item: InputMediaItem,
    source: MediaSource,
    group_id: str,
    wall: float,
    now: float,
) -> dict[str, Any]:
    bot_id = state.bot_id(token)
    message = new_message(state, token, target.chat, params, wall)
    message["media_group_id"] = group_id
    fields, file_id = media_fields(state.files, item.kind, bot_id, source, item.options)
    message.update(fields)
    message.update(caption_fields(item.kind, item.caption, item.options))
    message_id = message["message_id"]
    state.accept(
        target.chat_id,
        item.caption,
        message_id,
        params,
        now,
        _METHOD,
        wall,
        kind=item.kind,
        file_id=file_id,
        media_group_id=group_id,
        bot_id=bot_id,
        record_request=False,
    )
    stored = StoredMessage(
        bot_id, target.chat_id, message, item.parse_mode, item.options.get("caption_entities")
    )
    state.history.add(target.chat.key, message_id, stored)
    return message

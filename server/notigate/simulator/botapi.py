"""Bot API method handlers: ``/bot{token}/{method}``; the send methods live here, albums in
:mod:`~notigate.simulator.albums`, edits and deletes in :mod:`~notigate.simulator.edits`.

Order of checks, as the gateway's tests rely on it: token, latency, then the steps of
:mod:`notigate.simulator.pipeline` (storm 429, random 5xx, blocked/rate-limited/missing/
migrated chat, a scripted odd answer that is not a delivery), validation, limits, accept
(then a scripted odd answer that is).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from notigate.simulator.albums import send_media_group
from notigate.simulator.edits import (
    delete_message,
    delete_messages,
    edit_message_caption,
    edit_message_media,
    edit_message_reply_markup,
    edit_message_text,
)
from notigate.simulator.files import resolve_media, url_failure
from notigate.simulator.history import StoredMessage
from notigate.simulator.media import caption_fields, media_fields
from notigate.simulator.messages import markup_of, text_fields
from notigate.simulator.pipeline import (
    Target,
    admit,
    fail,
    finish,
    new_message,
    open_request,
    truthy,
)
from notigate.simulator.state import Fault, SimulatorState
from notigate.simulator.validate import MAX_CAPTION, MAX_TEXT, check_parse_mode, check_text
from notigate.simulator.wire import FilePart, ParamsError, error_response, ok_response, read_params

__all__ = ["STATE_KEY", "handle_bot_api"]

STATE_KEY = web.AppKey("notigate_simulator_state", SimulatorState)

Handler = Callable[[SimulatorState, str, dict[str, Any]], web.Response]
# (recorded text, extra Message fields, kind, file_id) or an error description.
Produced = tuple[str, dict[str, Any], str, str | None]
Content = Callable[[SimulatorState, str, dict[str, Any], str], Produced | str]


def _send(
    state: SimulatorState,
    token: str,
    params: dict[str, Any],
    *,
    method: str,
    content: Content,
    text_key: str,
    empty_error: str | None,
    limit: int,
) -> web.Response:
    """The pipeline shared by the send methods (see :mod:`notigate.simulator.pipeline`)."""
    now = time.monotonic()
    target = open_request(state, method, params, now)
    if not isinstance(target, Target):
        return target
    chat_id, chat = target.chat_id, target.chat
    mode, problem = check_parse_mode(params)
    raw_text = params.get(text_key)
    text = raw_text if isinstance(raw_text, str) else ""
    if problem is None:
        problem = check_text(text, mode, limit=limit, empty_error=empty_error)
    if problem is not None:
        return fail(state, method, chat_id, now, Fault(400, problem))
    produced = content(state, token, params, text)
    if isinstance(produced, str):
        return fail(state, method, chat_id, now, Fault(400, produced))
    text, extra, kind, file_id = produced
    refused = admit(state, token, method, target, params, now)
    if refused is not None:
        return refused
    wall = state.wall_time()
    message = new_message(state, token, chat, params, wall)
    message.update(extra)
    markup = markup_of(params)
    if markup is not None:
        message["reply_markup"] = markup
    message_id = message["message_id"]
    bot_id = message["from"]["id"]
    sent = state.accept(
        chat_id,
        text,
        message_id,
        params,
        now,
        method,
        wall,
        kind=kind,
        file_id=file_id,
        bot_id=bot_id,
    )
    if kind == "text":
        # Rebuilt from the send record when needed: nothing more to keep on the hot path.
        state.history.add(chat.key, message_id, sent)
    else:
        entities = params.get("caption_entities")
        stored = StoredMessage(bot_id, chat_id, message, mode, entities)
        state.history.add(chat.key, message_id, stored)
    return finish(target, message)


def _text_content(
    state: SimulatorState, token: str, params: dict[str, Any], text: str
) -> Produced | str:
    return text, text_fields(params, text), "text", None


def _media_content(kind: str) -> Content:
    def content(
        state: SimulatorState, token: str, params: dict[str, Any], caption: str
    ) -> Produced | str:
        bot_id = state.bot_id(token)
        source = resolve_media(state.files, params.get(kind), kind, bot_id, params, field=kind)
        if isinstance(source, str):
            return source
        failure = url_failure(source, kind)
        if failure is not None:
            return failure
        extra, file_id = media_fields(state.files, kind, bot_id, source, params)
        extra.update(caption_fields(kind, caption, params))
        if truthy(params.get("protect_content")):
            extra["has_protected_content"] = True
        return caption, extra, kind, file_id

    return content


def _send_message(state: SimulatorState, token: str, params: dict[str, Any]) -> web.Response:
    return _send(
        state,
        token,
        params,
        method="sendMessage",
        content=_text_content,
        text_key="text",
        empty_error="Bad Request: message text is empty",
        limit=MAX_TEXT,
    )


def _media_sender(method: str, kind: str) -> Handler:
    content = _media_content(kind)

    def handler(state: SimulatorState, token: str, params: dict[str, Any]) -> web.Response:
        return _send(
            state,
            token,
            params,
            method=method,
            content=content,
            text_key="caption",
            empty_error=None,
            limit=MAX_CAPTION,
        )

    return handler


def _get_me(state: SimulatorState, token: str, params: dict[str, Any]) -> web.Response:
    state.record("getMe", None, 200, time.monotonic())
    return ok_response(state.bot_user(token))


def _returns_true(name: str) -> Handler:
    def handler(state: SimulatorState, token: str, params: dict[str, Any]) -> web.Response:
        state.record(name, None, 200, time.monotonic())
        return ok_response(True)

    return handler


# Canonical method names keyed by their lower-case form (the Bot API ignores case).
_METHODS: dict[str, tuple[str, Handler]] = {
    "getme": ("getMe", _get_me),
    "sendmessage": ("sendMessage", _send_message),
    "sendphoto": ("sendPhoto", _media_sender("sendPhoto", "photo")),
    "senddocument": ("sendDocument", _media_sender("sendDocument", "document")),
    "sendvideo": ("sendVideo", _media_sender("sendVideo", "video")),
    "sendanimation": ("sendAnimation", _media_sender("sendAnimation", "animation")),
    "sendaudio": ("sendAudio", _media_sender("sendAudio", "audio")),
    "sendvoice": ("sendVoice", _media_sender("sendVoice", "voice")),
    "sendmediagroup": ("sendMediaGroup", send_media_group),
    "editmessagetext": ("editMessageText", edit_message_text),
    "editmessagecaption": ("editMessageCaption", edit_message_caption),
    "editmessagemedia": ("editMessageMedia", edit_message_media),
    "editmessagereplymarkup": ("editMessageReplyMarkup", edit_message_reply_markup),
    "deletemessage": ("deleteMessage", delete_message),
    "deletemessages": ("deleteMessages", delete_messages),
    "close": ("close", _returns_true("close")),
    "logout": ("logOut", _returns_true("logOut")),
}


async def handle_bot_api(request: web.Request) -> web.Response:
    """Serve one Bot API call."""
    state = request.app[STATE_KEY]
    token = request.match_info["token"]
    raw_method = request.match_info["method"]
    entry = _METHODS.get(raw_method.lower())
    method = entry[0] if entry is not None else raw_method
    params: dict[str, Any] = {}
    bad_body: ParamsError | None = None
    try:
        params = await read_params(request)
    except ParamsError as exc:
        bad_body = exc
    raw_chat = params.get("chat_id")
    chat_id = raw_chat if isinstance(raw_chat, str) else None
    if not state.is_active(token):
        state.record(method, chat_id, 401, time.monotonic())
        return error_response(401, "Unauthorized")
    if bad_body is not None:
        state.record(method, None, bad_body.status, time.monotonic())
        return error_response(bad_body.status, str(bad_body))
    if request.content_type.startswith("multipart/"):
        for value in params.values():
            if isinstance(value, FilePart):
                state.count_upload(token, value.size)
    if entry is None:
        state.record(method, chat_id, 404, time.monotonic())
        return error_response(404, "Not Found")
    config = state.config
    if config.latency_s > 0.0 or config.latency_jitter_s > 0.0:
        # Simulated network/processing delay; the rng only needs to be unpredictable.
        await asyncio.sleep(config.latency_s + random.uniform(0.0, config.latency_jitter_s))
    return entry[1](state, token, params)

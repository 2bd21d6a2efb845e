"""Bot API method handlers: ``/bot{token}/{method}``.

Order of checks for the send methods, as the gateway's tests rely on it: token, latency,
storm 429, random 5xx, blocked/rate-limited/missing/migrated chat, a scripted odd answer
that is not a delivery, validation, limits, accept (then a scripted odd answer that is).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from notigate.simulator.state import CHAT_NOT_FOUND, Fault, SimulatorState, too_many_requests
from notigate.simulator.validate import MAX_CAPTION, MAX_TEXT, check_parse_mode, check_text
from notigate.simulator.wire import (
    ParamsError,
    error_response,
    ok_response,
    parse_chat,
    read_params,
)

__all__ = ["STATE_KEY", "handle_bot_api"]

STATE_KEY = web.AppKey("notigate_simulator_state", SimulatorState)

Handler = Callable[[SimulatorState, str, dict[str, Any]], web.Response]


def _truthy(value: Any) -> bool:
    return value is True or value == 1 or value == "true"


def _fail(
    state: SimulatorState, method: str, chat_id: str | None, now: float, fault: Fault
) -> web.Response:
    state.record(method, chat_id, fault.status, now, fault.retry_after)
    return error_response(fault.status, fault.description, fault.parameters)


def _send(
    state: SimulatorState,
    token: str,
    params: dict[str, Any],
    *,
    method: str,
    content: Callable[[dict[str, Any], str | None], tuple[str, dict[str, Any]] | str],
    empty_error: str | None,
    limit: int,
) -> web.Response:
    """The pipeline shared by the send methods.

    ``content`` returns (recorded text, extra Message fields) or an error description.
    """
    now = time.monotonic()
    raw_chat = params.get("chat_id")
    chat_id = raw_chat if isinstance(raw_chat, str) else None
    fault = state.scripted_fault(chat_id, now)
    if fault is not None:
        return _fail(state, method, chat_id, now, fault)
    answer = state.scripted_answer(chat_id)
    if answer is not None and not answer.deliver:
        state.record(method, chat_id, answer.status, now)
        return answer.response()
    if raw_chat is not None and chat_id is None:
        return _fail(state, method, None, now, Fault(400, CHAT_NOT_FOUND))
    if not chat_id:
        return _fail(state, method, chat_id, now, Fault(400, "Bad Request: chat_id is empty"))
    chat = parse_chat(chat_id)
    if chat is None:
        return _fail(state, method, chat_id, now, Fault(400, CHAT_NOT_FOUND))
    mode, problem = check_parse_mode(params)
    text_key = "text" if method == "sendMessage" else "caption"
    raw_text = params.get(text_key)
    text = raw_text if isinstance(raw_text, str) else ""
    if problem is None:
        problem = check_text(text, mode, limit=limit, empty_error=empty_error)
    extra: dict[str, Any] = {}
    if problem is None:
        produced = content(params, text)
        if isinstance(produced, str):
            problem = produced
        else:
            text, extra = produced
    if problem is not None:
        return _fail(state, method, chat_id, now, Fault(400, problem))
    config = state.config
    if config.enforce_limits:
        wait = state.limiter.try_acquire(
            config,
            token=token,
            chat_key=chat.key,
            private=chat.private,
            paid=_truthy(params.get("allow_paid_broadcast")),
            now=now,
        )
        if wait > 0.0:
            return _fail(state, method, chat_id, now, too_many_requests(wait))
    message_id = state.next_message_id(chat.key)
    wall = time.time()
    message: dict[str, Any] = {
        "message_id": message_id,
        "from": state.bot_user(token),
        "chat": chat.as_dict(),
        "date": int(wall),
    }
    message.update(extra)
    thread_id = params.get("message_thread_id")
    if chat.type == "supergroup" and isinstance(thread_id, int) and thread_id:
        message["message_thread_id"] = thread_id
        message["is_topic_message"] = True
    markup = params.get("reply_markup")
    if isinstance(markup, dict) and "inline_keyboard" in markup:
        message["reply_markup"] = markup
    state.accept(chat_id, text, message_id, params, now, method, date=wall)
    if answer is not None:
        return answer.response()
    return ok_response(message)


def _text_content(params: dict[str, Any], text: str | None) -> tuple[str, dict[str, Any]]:
    extra: dict[str, Any] = {"text": text}
    preview = params.get("link_preview_options")
    if isinstance(preview, dict):
        extra["link_preview_options"] = preview
    return text or "", extra


def _file_id(value: Any) -> str:
    if isinstance(value, dict):
        return f"upload-{value.get('file_name')}-{value.get('size')}"
    return str(value)


def _photo_content(params: dict[str, Any], caption: str | None) -> tuple[str, dict[str, Any]] | str:
    photo = params.get("photo")
    if not photo:
        return "Bad Request: there is no photo in the request"
    file_id = _file_id(photo)
    extra: dict[str, Any] = {
        "photo": [{"file_id": file_id, "file_unique_id": file_id[:32], "width": 90, "height": 90}]
    }
    if caption:
        extra["caption"] = caption
    return caption or "", extra


def _document_content(
    params: dict[str, Any], caption: str | None
) -> tuple[str, dict[str, Any]] | str:
    document = params.get("document")
    if not document:
        return "Bad Request: there is no document in the request"
    file_id = _file_id(document)
    extra: dict[str, Any] = {"document": {"file_id": file_id, "file_unique_id": file_id[:32]}}
    if isinstance(document, dict):
        extra["document"]["file_name"] = document.get("file_name")
    if caption:
        extra["caption"] = caption
    return caption or "", extra


def _send_message(state: SimulatorState, token: str, params: dict[str, Any]) -> web.Response:
    return _send(
        state,
        token,
        params,
        method="sendMessage",
        content=_text_content,
        empty_error="Bad Request: message text is empty",
        limit=MAX_TEXT,
    )


def _send_photo(state: SimulatorState, token: str, params: dict[str, Any]) -> web.Response:
    return _send(
        state,
        token,
        params,
        method="sendPhoto",
        content=_photo_content,
        empty_error=None,
        limit=MAX_CAPTION,
    )


def _send_document(state: SimulatorState, token: str, params: dict[str, Any]) -> web.Response:
    return _send(
        state,
        token,
        params,
        method="sendDocument",
        content=_document_content,
        empty_error=None,
        limit=MAX_CAPTION,
    )


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
    "sendphoto": ("sendPhoto", _send_photo),
    "senddocument": ("sendDocument", _send_document),
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
        state.record(method, None, 400, time.monotonic())
        return error_response(400, str(bad_body))
    if entry is None:
        state.record(method, chat_id, 404, time.monotonic())
        return error_response(404, "Not Found")
    config = state.config
    if config.latency_s > 0.0 or config.latency_jitter_s > 0.0:
        # Simulated network/processing delay; the rng only needs to be unpredictable.
        await asyncio.sleep(config.latency_s + random.uniform(0.0, config.latency_jitter_s))
    return entry[1](state, token, params)

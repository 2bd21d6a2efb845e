"""Control endpoints (``/_sim/...``): what the simulator received, and scripted faults.

Used by tests and benchmarks that run the simulator in another process, and by the
``notigate sandbox`` commands.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from aiohttp import web

from notigate.simulator.answers import ChatAnswer, answer_shape
from notigate.simulator.botapi import STATE_KEY
from notigate.simulator.config import SimulatorConfig

__all__ = ["INSTANCE_HEADER", "MAX_WAIT_S", "add_control_routes"]

# Names the simulator instance in /_sim/messages answers (see SimulatorState.instance).
INSTANCE_HEADER = "X-Notigate-Simulator"
# Longest long-poll of /_sim/messages?wait=...: below common proxy and client timeouts.
MAX_WAIT_S = 60.0


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=json.dumps)


def _config_dict(config: SimulatorConfig) -> dict[str, Any]:
    data = dataclasses.asdict(config)
    data["missing_chats"] = sorted(config.missing_chats)
    return data


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError as exc:
        raise web.HTTPBadRequest(text="body must be a JSON object") from exc
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return data


def _required(data: dict[str, Any], name: str) -> Any:
    if name not in data:
        raise web.HTTPBadRequest(text=f"missing field {name!r}")
    return data[name]


def _query_number(request: web.Request, name: str, kind: type[int] | type[float]) -> float:
    raw = request.query.get(name, "0")
    try:
        value = kind(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be a number >= 0, got {raw!r}") from None
    if not value >= 0:  # also rejects NaN
        raise web.HTTPBadRequest(text=f"{name} must be a number >= 0, got {raw!r}")
    return value


async def _messages(request: web.Request) -> web.Response:
    """Accepted sends, oldest first.

    Query: ``after`` (only ``seq`` greater than this), ``chat_id`` (only this chat),
    ``wait`` (seconds, at most :data:`MAX_WAIT_S`: when nothing matches, answer as soon
    as something does, or with ``[]`` when the time is up), ``instance`` (the
    :data:`INSTANCE_HEADER` the cursor came from: another one answers at once, since
    that cursor means nothing here).
    """
    state = request.app[STATE_KEY]
    after = int(_query_number(request, "after", int))
    wait = min(_query_number(request, "wait", float), MAX_WAIT_S)
    chat_id = request.query.get("chat_id") or None
    if request.query.get("instance", state.instance) != state.instance:
        wait = 0.0
    found = await state.wait_messages(after, chat_id, wait)
    response = _json([dataclasses.asdict(m) for m in found])
    response.headers[INSTANCE_HEADER] = state.instance
    return response


async def _requests(request: web.Request) -> web.Response:
    """Every Bot API request with its status, oldest first; ``?chat_id=`` only those to
    that chat (blocked or not)."""
    state = request.app[STATE_KEY]
    chat_id = request.query.get("chat_id")
    found = state.requests if chat_id is None else state.requests_to(chat_id)
    return _json([dataclasses.asdict(r) for r in found])


async def _stats(request: web.Request) -> web.Response:
    return _json(request.app[STATE_KEY].stats())


async def _get_config(request: web.Request) -> web.Response:
    return _json(_config_dict(request.app[STATE_KEY].config))


async def _configure(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        config = state.configure(**await _body(request))
    except ValueError as exc:
        return _json({"error": str(exc)}, status=400)
    return _json(_config_dict(config))


async def _reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return _json({"ok": True})


async def _revoke(request: web.Request) -> web.Response:
    request.app[STATE_KEY].revoke_token(str(_required(await _body(request), "token")))
    return _json({"ok": True})


async def _accept(request: web.Request) -> web.Response:
    request.app[STATE_KEY].accept_token(str(_required(await _body(request), "token")))
    return _json({"ok": True})


async def _block(request: web.Request) -> web.Response:
    """``{"chat_id", "status"?: 403 | 400, "description"?}``: sends to the chat fail so."""
    data = await _body(request)
    chat_id = str(_required(data, "chat_id"))
    status = data.get("status", 403)
    description = data.get("description")
    if not isinstance(status, int) or isinstance(status, bool):
        return _json({"error": "status must be 400 or 403"}, status=400)
    try:
        request.app[STATE_KEY].block_chat(
            chat_id, None if description is None else str(description), status
        )
    except ValueError as exc:
        return _json({"error": str(exc)}, status=400)
    return _json({"ok": True})


async def _unblock(request: web.Request) -> web.Response:
    """``{"chat_id"}``: serve the chat again; ``was_blocked`` says whether it was."""
    chat_id = str(_required(await _body(request), "chat_id"))
    was_blocked = request.app[STATE_KEY].unblock_chat(chat_id)
    return _json({"ok": True, "was_blocked": was_blocked})


async def _migrate(request: web.Request) -> web.Response:
    data = await _body(request)
    try:
        request.app[STATE_KEY].migrate_chat(
            str(_required(data, "old_chat_id")), str(_required(data, "new_chat_id"))
        )
    except ValueError as exc:
        return _json({"error": str(exc)}, status=400)
    return _json({"ok": True})


async def _storm(request: web.Request) -> web.Response:
    data = await _body(request)
    try:
        seconds = float(_required(data, "seconds"))
        retry_after = int(_required(data, "retry_after"))
    except (TypeError, ValueError) as exc:
        return _json({"error": str(exc)}, status=400)
    request.app[STATE_KEY].rate_limit_storm(seconds, retry_after)
    return _json({"ok": True})


def _int_field(data: dict[str, Any], name: str, default: int | None = None) -> int:
    value = data.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an integer")
    return value


async def _rate_limit_chat(request: web.Request) -> web.Response:
    """``{"chat_id", "retry_after"}``: sends to the chat get 429 with that wait."""
    data = await _body(request)
    chat_id = str(_required(data, "chat_id"))
    try:
        retry_after = _int_field(data, "retry_after")
        request.app[STATE_KEY].rate_limit_chat(chat_id, retry_after)
    except ValueError as exc:
        return _json({"error": str(exc)}, status=400)
    return _json({"ok": True})


async def _answer(request: web.Request) -> web.Response:
    """Script an odd answer for sends to one chat.

    ``{"chat_id", "shape", "error_code"?, "status"?, "description"?}`` for a named shape
    (see :data:`notigate.simulator.answers.SHAPES`), or ``{"chat_id", "status", "body",
    "content_type"?, "deliver"?}`` for a raw one (``body`` as text).
    """
    data = await _body(request)
    chat_id = str(_required(data, "chat_id"))
    try:
        if "shape" in data:
            description = data.get("description")
            answer = answer_shape(
                str(data["shape"]),
                error_code=_int_field(data, "error_code", 400),
                status=_int_field(data, "status") if "status" in data else None,
                description=None if description is None else str(description),
            )
        else:
            deliver = data.get("deliver", False)
            if not isinstance(deliver, bool):
                raise ValueError("deliver must be a boolean")
            answer = ChatAnswer(
                _int_field(data, "status"),
                str(_required(data, "body")).encode(),
                str(data.get("content_type", "application/json")),
                deliver,
            )
        if not 100 <= answer.status <= 599:
            raise ValueError("status must be an HTTP status (100..599)")
    except ValueError as exc:
        return _json({"error": str(exc)}, status=400)
    request.app[STATE_KEY].script_answer(chat_id, answer)
    return _json({"ok": True})


async def _clock(request: web.Request) -> web.Response:
    """``{"advance_s": N}``: move the simulated wall clock N seconds ahead (message dates,
    the 48-hour delete rule); answers the total ``offset_s`` and the simulated ``now``."""
    state = request.app[STATE_KEY]
    data = await _body(request)
    try:
        advance = data.get("advance_s", 0)
        if not isinstance(advance, int | float) or isinstance(advance, bool):
            raise ValueError("advance_s must be a number")
        offset = state.advance_clock(float(advance))
    except ValueError as exc:
        return _json({"error": str(exc)}, status=400)
    return _json({"ok": True, "offset_s": offset, "now": state.wall_time()})


async def _fail_album_item(request: web.Request) -> web.Response:
    """``{"chat_id", "position", "description"}``: the next album to the chat fails at
    item ``position`` (from 1) with ``description`` (see
    :meth:`~notigate.simulator.state.SimulatorState.fail_album_item`)."""
    data = await _body(request)
    chat_id = str(_required(data, "chat_id"))
    try:
        position = _int_field(data, "position")
        description = _required(data, "description")
        if not isinstance(description, str):
            raise ValueError("description must be a string")
        request.app[STATE_KEY].fail_album_item(chat_id, position, description)
    except ValueError as exc:
        return _json({"error": str(exc)}, status=400)
    return _json({"ok": True})


def _query_chat(request: web.Request) -> str:
    chat_id = request.query.get("chat_id")
    if not chat_id:
        raise web.HTTPBadRequest(text="missing query parameter 'chat_id'")
    return chat_id


async def _message(request: web.Request) -> web.Response:
    """``?chat_id=&message_id=``: what that message shows now (404 when never sent)."""
    chat_id = _query_chat(request)
    message_id = int(_query_number(request, "message_id", int))
    record = request.app[STATE_KEY].message(chat_id, message_id)
    if record is None:
        return _json({"error": f"no message {message_id} in chat {chat_id}"}, status=404)
    return _json(dataclasses.asdict(record))


async def _chat(request: web.Request) -> web.Response:
    """``?chat_id=[&include_deleted=1]``: what the chat shows now, by message id."""
    chat_id = _query_chat(request)
    include = request.query.get("include_deleted", "") in ("1", "true")
    records = request.app[STATE_KEY].chat_messages(chat_id, include_deleted=include)
    return _json([dataclasses.asdict(r) for r in records])


async def _uploads(request: web.Request) -> web.Response:
    """File parts uploaded: ``{"<bot id>": {"count", "bytes"}}``; with ``?token=`` or
    ``?bot_id=`` that bot's ``{"count", "bytes"}`` only."""
    state = request.app[STATE_KEY]
    token = request.query.get("token")
    if token:
        return _json(dataclasses.asdict(state.uploads(token)))
    if "bot_id" in request.query:
        try:
            bot_id = int(request.query["bot_id"])
        except ValueError:
            raise web.HTTPBadRequest(text="bot_id must be an integer") from None
        return _json(dataclasses.asdict(state.uploads(bot_id)))
    return _json({str(k): dataclasses.asdict(v) for k, v in state.all_uploads().items()})


def add_control_routes(app: web.Application) -> None:
    """Register the ``/_sim`` endpoints on ``app`` (which must hold the state)."""
    app.router.add_get("/_sim/messages", _messages)
    app.router.add_get("/_sim/requests", _requests)
    app.router.add_get("/_sim/stats", _stats)
    app.router.add_get("/_sim/config", _get_config)
    app.router.add_post("/_sim/configure", _configure)
    app.router.add_post("/_sim/reset", _reset)
    app.router.add_post("/_sim/tokens/revoke", _revoke)
    app.router.add_post("/_sim/tokens/accept", _accept)
    app.router.add_post("/_sim/block", _block)
    app.router.add_post("/_sim/unblock", _unblock)
    app.router.add_post("/_sim/migrate", _migrate)
    app.router.add_post("/_sim/storm", _storm)
    app.router.add_post("/_sim/rate_limit_chat", _rate_limit_chat)
    app.router.add_post("/_sim/answer", _answer)
    app.router.add_post("/_sim/clock", _clock)
    app.router.add_post("/_sim/fail_album_item", _fail_album_item)
    app.router.add_get("/_sim/message", _message)
    app.router.add_get("/_sim/chat", _chat)
    app.router.add_get("/_sim/uploads", _uploads)

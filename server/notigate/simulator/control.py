"""Control endpoints (``/_sim/...``) for tests that run the simulator in another process."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from aiohttp import web

from notigate.simulator.botapi import STATE_KEY
from notigate.simulator.config import SimulatorConfig

__all__ = ["add_control_routes"]


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


async def _messages(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return _json([dataclasses.asdict(m) for m in state.messages])


async def _requests(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return _json([dataclasses.asdict(r) for r in state.requests])


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
    data = await _body(request)
    chat_id = str(_required(data, "chat_id"))
    state = request.app[STATE_KEY]
    if "description" in data:
        state.block_chat(chat_id, str(data["description"]))
    else:
        state.block_chat(chat_id)
    return _json({"ok": True})


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
    app.router.add_post("/_sim/migrate", _migrate)
    app.router.add_post("/_sim/storm", _storm)

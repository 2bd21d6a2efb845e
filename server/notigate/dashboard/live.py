"""Live updates: a bot's event stream relayed to the page as server-sent events.

Each browser tab holds one WatchEvents call. Every event goes out with its cursor as the
SSE ``id``, so when the connection drops the browser's EventSource reconnects with
``Last-Event-ID`` and the relay resumes after that event: nothing is missed, or the page
hears ``gap`` and reloads what it shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import grpc
from aiohttp import web

from notigate.dashboard import render
from notigate.dashboard.api import Backend, session_of
from notigate.events.entries import is_cursor
from notigate_client import pb

__all__ = ["PING_S", "LiveRelays"]

# A comment line this often keeps proxies from closing an idle stream and notices a tab
# that went away.
PING_S = 15.0
_END = object()


class LiveRelays:
    """The open relays, so that stopping the dashboard ends them at once."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._calls: set[Any] = set()

    def stop(self) -> None:
        """End every relay (their handlers return)."""
        for call in list(self._calls):
            call.cancel()

    async def handle(self, request: web.Request, bot: str) -> web.StreamResponse:
        """``GET /api/events``: relay ``bot``'s events until the tab or the gateway goes."""
        backend = self._backend
        resume = request.headers.get("Last-Event-ID", "")
        watch = pb.WatchEventsRequest(bot=bot, start_cursor=resume if is_cursor(resume) else "")
        call = backend.stub.WatchEvents(watch, metadata=backend.metadata)
        self._calls.add(call)
        try:
            # The first answer (or its refusal) before the 200: a refused watch is an error
            # body, not an empty stream the browser would retry forever.
            await call.initial_metadata()
            response = web.StreamResponse(
                headers={
                    "Content-Type": "text/event-stream",
                    "Cache-Control": "no-store",
                    "X-Accel-Buffering": "no",
                }
            )
            await response.prepare(request)
            await response.write(b"retry: 2000\n\n")
            await self._relay(request, call, response)
            return response
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED:
                return web.Response(status=204)
            return render.rpc_error(exc)
        finally:
            self._calls.discard(call)
            call.cancel()

    async def _relay(self, request: web.Request, call: Any, response: web.StreamResponse) -> None:
        expires = session_of(request).expires_s
        events: asyncio.Queue[Any] = asyncio.Queue(maxsize=1000)

        async def read() -> None:
            try:
                async for answer in call:
                    await events.put(answer)
            finally:
                await events.put(_END)

        reader = asyncio.create_task(read())
        try:
            while time.time() < expires:
                try:
                    answer = await asyncio.wait_for(events.get(), PING_S)
                except TimeoutError:
                    await response.write(b": ping\n\n")
                    continue
                if answer is _END:
                    break
                await response.write(_frame(answer))
        except ConnectionResetError:
            pass  # the tab went away
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await reader


def _frame(answer: pb.WatchEventsResponse) -> bytes:
    lines = []
    if answer.gap:
        lines.append("event: gap\ndata: {}\n\n")
    event = render.message_json(answer.event)
    lines.append(f"id: {answer.event.cursor}\nevent: job\ndata: {json.dumps(event)}\n\n")
    return "".join(lines).encode()

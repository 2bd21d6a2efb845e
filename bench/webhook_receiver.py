"""A webhook receiver for the bench: an aiohttp server on 127.0.0.1 that answers 204 to
every POST and records when each event arrived, checking its signature as the README's
receiver does (``X-Notigate-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web

from bench.infra import HOST


@dataclass(frozen=True, slots=True)
class Hook:
    """One POST as the receiver got it."""

    event_id: str
    state: str
    event_ms: float  # the event's time (Redis's clock), ms since the epoch
    received_ms: float  # time.time() at arrival, ms since the epoch


def signature_ok(secret: str, timestamp: str, body: bytes, header: str) -> bool:
    """Whether one of the header's comma-separated ``v1=`` values signs this body."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    expected = f"v1={digest.hexdigest()}"
    return any(hmac.compare_digest(part.strip(), expected) for part in header.split(","))


def event_ms(rfc3339: str) -> float:
    """An event's JSON time (RFC 3339, "Z" or an offset) as ms since the epoch."""
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp() * 1000


@dataclass
class WebhookReceiver:
    """Listens on a port of its own choosing; ``url`` is where to point the gateway."""

    secret: str
    hooks: list[Hook] = field(default_factory=list)
    bad_signatures: int = 0
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/hook"

    async def start(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/hook", self._post)
        # No access log: one line per POST would be most of the receiver's work.
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def _post(self, request: web.Request) -> web.Response:
        now = time.time() * 1000
        body = await request.read()
        h = request.headers
        if not signature_ok(
            self.secret, h.get("X-Notigate-Timestamp", ""), body, h.get("X-Notigate-Signature", "")
        ):
            self.bad_signatures += 1
        event = json.loads(body)
        self.hooks.append(
            Hook(h.get("X-Notigate-Event-Id", ""), event["state"], event_ms(event["time"]), now)
        )
        return web.Response(status=204)

    def distinct(self) -> int:
        return len({x.event_id for x in self.hooks})

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

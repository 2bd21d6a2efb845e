"""One POST of one event to the webhook: the body, the headers, and what came of it.

The body is the event in the proto's JSON mapping (field names as in the proto, one
line). A 2xx acknowledges it; any other status (redirects are not followed: the
signed body goes to the configured URL only), a timeout or a connection error is a
failure to retry.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiohttp
from google.protobuf import json_format

from notigate import __version__
from notigate.config import DEFAULT_BOT
from notigate.webhooks.signing import sign
from notigate_client import pb

__all__ = ["Outcome", "WebhookPoster", "event_body"]

USER_AGENT = f"notigate/{__version__} (webhook)"


def event_body(event: pb.Event) -> bytes:
    """The JSON body posted for ``event``."""
    text = json_format.MessageToJson(event, preserving_proto_field_name=True, indent=None)
    return text.encode()


def event_id(event: pb.Event) -> str:
    """The id a receiver deduplicates by: the cursor, unique in one bot's stream, and
    another bot's name before it (each bot's stream has cursors of its own)."""
    return event.cursor if event.bot in ("", DEFAULT_BOT) else f"{event.bot}/{event.cursor}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one POST came to."""

    acknowledged: bool
    # "HTTP 200", "HTTP 503", "timed out after 10 s", "connection refused"...
    detail: str


class WebhookPoster:
    """POSTs events to ``url``, signed with ``secret``, at most ``concurrency`` at once."""

    def __init__(self, url: str, secret: str, *, timeout_s: float, concurrency: int) -> None:
        self.url = url
        self._secret = secret
        self.timeout_s = timeout_s
        self._concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._concurrency),
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                headers={"User-Agent": USER_AGENT},
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def headers(self, event: pb.Event, body: bytes, timestamp: int) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "X-Notigate-Event-Id": event_id(event),
            "X-Notigate-Timestamp": str(timestamp),
            "X-Notigate-Signature": sign(self._secret, timestamp, body),
        }

    async def post(self, event: pb.Event) -> Outcome:
        """POST ``event`` once."""
        await self.start()
        assert self._session is not None
        body = event_body(event)
        headers = self.headers(event, body, int(time.time()))
        try:
            async with self._session.post(
                self.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                # The body is not read: a receiver's answer carries nothing for us.
                ok = 200 <= response.status < 300
                return Outcome(ok, f"HTTP {response.status}")
        except TimeoutError:
            return Outcome(False, f"no answer within {self.timeout_s:g} s")
        except aiohttp.ClientError as exc:
            return Outcome(False, str(exc) or type(exc).__name__)
        except OSError as exc:
            return Outcome(False, exc.strerror or str(exc))

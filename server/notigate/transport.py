"""A python-telegram-bot transport on one aiohttp ClientSession.

PTB's default httpx transport costs about 2 ms of CPU per call; this one is several times
cheaper, which matters because a gateway worker spends most of its time in Bot API calls.

The gateway's sender calls :meth:`AiohttpRequest.exchange` and judges each answer itself
(:mod:`notigate.answers`). The rest of this module serves PTB's own calls (``Bot`` methods
on this transport), which go through :meth:`AiohttpRequest.do_request`:

Error responses: PTB rewrites Telegram's ``description`` when it builds exceptions (it
strips "Bad Request: " and re-capitalizes the rest). :func:`last_error_description` gives
callers the description exactly as Telegram sent it for the latest failed call made by the
current task.

Flood control: PTB 22.x warns (PTBDeprecationWarning) whenever it *builds* a RetryAfter,
which under ``-W error`` replaces the 429 with an unrelated exception. For 429 answers this
transport raises :class:`FloodControlExceeded`, a RetryAfter built without the warning.
"""

from __future__ import annotations

import datetime as dtm
import json
import re
from contextvars import ContextVar
from typing import Any

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.request import BaseRequest, RequestData

__all__ = [
    "AiohttpRequest",
    "FloodControlExceeded",
    "last_error_description",
    "redact_url",
    "reset_last_error",
]

_FORM = {"Content-Type": "application/x-www-form-urlencoded"}
_BOT_PATH = re.compile(r"/bot[^/\s]+/")
# Set per task by do_request, so concurrent senders never see each other's errors.
_last_error_body: ContextVar[bytes | None] = ContextVar("notigate_last_error_body", default=None)


class FloodControlExceeded(RetryAfter):
    """A :class:`telegram.error.RetryAfter` for a 429 answer, built without PTB's warning.

    Attributes:
        retry_after_s: Telegram's ``retry_after`` in seconds.
        description: Telegram's description, verbatim.
    """

    __slots__ = ("description", "retry_after_s")

    def __init__(self, retry_after_s: int, description: str) -> None:
        # Skips RetryAfter.__init__, whose only extra work is the warning-emitting message.
        TelegramError.__init__(self, f"Flood control exceeded. Retry in {retry_after_s} seconds")
        self._retry_after = dtm.timedelta(seconds=retry_after_s)
        self.retry_after_s = retry_after_s
        self.description = description

    def __reduce__(self) -> tuple[type, tuple[int, str]]:  # type: ignore[override]
        return self.__class__, (self.retry_after_s, self.description)


def _flood_control(body: bytes) -> FloodControlExceeded | None:
    try:
        data: Any = json.loads(body)
        retry_after = data["parameters"]["retry_after"]
        description = data.get("description") or "Too Many Requests"
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if isinstance(retry_after, int) and not isinstance(retry_after, bool) and retry_after > 0:
        return FloodControlExceeded(retry_after, str(description))
    return None


def redact_url(text: str) -> str:
    """Replace the token inside any ``/bot<token>/`` path in ``text`` with ``<token>``."""
    return _BOT_PATH.sub("/bot<token>/", text)


def reset_last_error() -> None:
    """Forget the error body remembered for the current task."""
    _last_error_body.set(None)


def last_error_description() -> str | None:
    """Telegram's ``description`` of the latest non-2xx answer seen by the current task."""
    body = _last_error_body.get()
    if body is None:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    description = data.get("description") if isinstance(data, dict) else None
    return description if isinstance(description, str) else None


def _pick(value: ODVInput[float], default: float | None) -> float | None:
    return default if isinstance(value, DefaultValue) else value


class AiohttpRequest(BaseRequest):
    """:class:`telegram.request.BaseRequest` on an aiohttp session with a bounded pool.

    Args:
        connection_pool_size: most simultaneous connections (``TCPConnector(limit=...)``).
        read_timeout: default seconds to wait for response data.
        write_timeout: accepted for PTB compatibility; aiohttp has no separate write timeout.
        connect_timeout: default seconds to establish a connection.
        pool_timeout: default seconds to wait for a free pooled connection.
        keepalive_timeout_s: how long idle connections stay open for reuse.
    """

    def __init__(
        self,
        connection_pool_size: int = 64,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        keepalive_timeout_s: float = 30.0,
    ) -> None:
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._keepalive_timeout_s = keepalive_timeout_s
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        """The default read timeout in seconds."""
        return self._read_timeout

    async def initialize(self) -> None:
        """Open the session (again, after :meth:`shutdown`)."""
        if self._session is not None and not self._session.closed:
            return
        connector = aiohttp.TCPConnector(
            limit=self._pool_size,
            limit_per_host=0,
            keepalive_timeout=self._keepalive_timeout_s,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": self.USER_AGENT},
            # Proxies from the environment would silently reroute the Bot API traffic.
            trust_env=False,
        )

    async def shutdown(self) -> None:
        """Close the session and its connections."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Perform one call; see :meth:`telegram.request.BaseRequest.do_request`.

        Raises:
            FloodControlExceeded: a 429 answer with ``retry_after``.
            TimedOut: connect, pool or read timeout.
            NetworkError: any other transport failure (the token is redacted from the text).
        """
        status, body = await self.exchange(
            url, method, request_data, read_timeout, connect_timeout, pool_timeout
        )
        if not 200 <= status <= 299:
            _last_error_body.set(body)
            if status == 429:
                flood = _flood_control(body)
                if flood is not None:
                    raise flood
        return status, body

    async def exchange(
        self,
        url: str,
        method: str = "POST",
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """One HTTP request: the status and body as they came, whatever they say.

        For callers that judge the answer themselves (the sender does; PTB's own parsing
        trusts the HTTP status and fails on a 200 without ``result``).

        Raises:
            TimedOut: connect, pool or read timeout.
            NetworkError: any other transport failure (the token is redacted from the text).
        """
        session = self._session
        if session is None or session.closed:
            raise RuntimeError("AiohttpRequest is not initialized")
        read_s = _pick(read_timeout, self._read_timeout)
        connect_s = _pick(connect_timeout, self._connect_timeout)
        pool_s = _pick(pool_timeout, self._pool_timeout)
        # aiohttp's `connect` covers waiting for a pooled connection plus connecting.
        total_connect = None if connect_s is None or pool_s is None else connect_s + pool_s
        timeout = aiohttp.ClientTimeout(
            total=None, connect=total_connect, sock_connect=connect_s, sock_read=read_s
        )
        data: aiohttp.FormData | bytes | None = None
        headers: dict[str, str] | None = None
        if request_data is not None:
            if request_data.contains_files:
                data = _multipart(request_data)
            else:
                data = request_data.url_encoded_parameters().encode()
                headers = _FORM
        try:
            async with session.request(
                method, url, data=data, headers=headers, timeout=timeout
            ) as response:
                status = response.status
                body = await response.read()
        except TimeoutError as exc:
            # `from None`: the chained aiohttp exception would carry the URL, i.e. the token.
            raise TimedOut(f"Timed out: aiohttp.{type(exc).__name__}") from None
        except aiohttp.ClientError as exc:
            raise NetworkError(redact_url(f"aiohttp.{type(exc).__name__}: {exc}")) from None
        return status, body


def _multipart(request_data: RequestData) -> aiohttp.FormData:
    form = aiohttp.FormData(quote_fields=False)
    for name, value in request_data.json_parameters.items():
        form.add_field(name, value)
    for name, (filename, content, mimetype) in request_data.multipart_data.items():
        form.add_field(name, content, filename=filename, content_type=mimetype)
    return form

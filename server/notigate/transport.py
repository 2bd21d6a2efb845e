"""A python-telegram-bot transport on one aiohttp ClientSession.

PTB's default httpx transport costs about 2 ms of CPU per call; this one is several times
cheaper, which matters because a gateway worker spends most of its time in Bot API calls.

The gateway's sender calls :meth:`AiohttpRequest.exchange` and judges each answer itself
(:mod:`notigate.answers`). The rest of this module serves PTB's own calls (``Bot`` methods
on this transport) through :meth:`AiohttpRequest.do_request`, which is the same request.
"""

from __future__ import annotations

import re

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

__all__ = ["AiohttpRequest", "redact_url"]

_FORM = {"Content-Type": "application/x-www-form-urlencoded"}
_BOT_PATH = re.compile(r"/bot[^/\s]+/")


def redact_url(text: str) -> str:
    """Replace the token inside any ``/bot<token>/`` path in ``text`` with ``<token>``."""
    return _BOT_PATH.sub("/bot<token>/", text)


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
        """Perform one call; see :meth:`telegram.request.BaseRequest.do_request` (PTB judges
        the answer). ``write_timeout`` is covered by the read timeout."""
        return await self.exchange(
            url, method, request_data, read_timeout, connect_timeout, pool_timeout
        )

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

"""The dashboard's HTTP listener: the page, its login, and the guards every request passes.

Guards, in order: security headers on every answer; without API tokens, a Host check (a
page of another site cannot reach a loopback dashboard through DNS rebinding); a session
for every ``/api/`` request but login; on every POST, the session's CSRF token and, when
the browser sends one, an Origin of this dashboard.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path

import grpc
from aiohttp import web

from notigate.config import Settings, is_loopback
from notigate.dashboard import render
from notigate.dashboard.api import (
    SESSION,
    Backend,
    Refused,
    add_api_routes,
    checked_bot,
    json_object,
    principal_bots,
    text_field,
)
from notigate.dashboard.live import LiveRelays
from notigate.dashboard.sessions import COOKIE, Session, Sessions
from notigate.errors import StoreError
from notigate.http_listen import serve
from notigate.sandbox_cli import url_for

__all__ = ["STATIC", "DashboardServer"]

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
# A wrong token at login costs the caller this long: guessing is slow, a typo is not.
_LOGIN_FAILURE_DELAY_S = 0.3
_OPEN_PATHS = frozenset({"/api/login", "/api/session"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _loopback_host(host: str) -> bool:
    """Whether a request's Host header (``name[:port]``) names a loopback host."""
    name = host if host.endswith("]") else host.rsplit(":", 1)[0]
    return is_loopback(name)


def _login_needed() -> web.Response:
    return render.error(HTTPStatus.UNAUTHORIZED, "UNAUTHENTICATED", "log in first", reason="LOGIN")


class DashboardServer:
    """Serves the dashboard for ``settings`` over ``backend`` (the gateway's API); the
    sessions' signing key comes from ``key`` (shared by every gateway on the store)."""

    def __init__(
        self, settings: Settings, backend: Backend, key: Callable[[], Awaitable[bytes]]
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.port = 0
        self._key = key
        self._sessions: Sessions | None = None
        self._sessions_lock = asyncio.Lock()
        self._live = LiveRelays(backend)
        self._runner: web.AppRunner | None = None
        # With no token nothing tells visitors apart: the dashboard answers loopback hosts
        # only (config.py allows no other address, unless NOTIGATE_DASHBOARD_OPEN).
        self._guarded = settings.has_tokens
        self._check_host = not self._guarded and not settings.dashboard_open

    async def sessions(self) -> Sessions:
        """The session checker, once the shared key is read (from Redis, on first use)."""
        if self._sessions is None:
            async with self._sessions_lock:
                if self._sessions is None:
                    self._sessions = Sessions(self.settings, await self._key())
        return self._sessions

    def app(self) -> web.Application:
        """The aiohttp application (exposed for tests that serve it themselves)."""
        app = web.Application(middlewares=[self._headers, self._errors, self._guard])
        app.router.add_get("/", self._index)
        if STATIC.is_dir():
            app.router.add_static("/static", STATIC, append_version=False)
        app.router.add_get("/api/session", self._session)
        app.router.add_post("/api/login", self._login)
        app.router.add_post("/api/logout", self._logout)
        app.router.add_get("/api/events", self._events)
        add_api_routes(app, self.backend)
        return app

    async def start(self, listen: str) -> None:
        """Bind ``host:port`` (port 0: any free one, see :attr:`port`) and serve."""
        self._runner = runner = await serve(self.app(), listen)
        self.port = int(runner.addresses[0][1])
        host = listen.rpartition(":")[0]
        log.info(
            "dashboard on %s/ (%s)",
            url_for(host, self.port),
            "log in with an API token" if self._guarded else "no login",
        )

    async def stop(self) -> None:
        """Stop serving; open live streams end at once."""
        self._live.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- middleware ---------------------------------------------------------------------

    @web.middleware
    async def _headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
        response.headers.update(_SECURITY_HEADERS)
        if request.path == "/" or request.path.startswith("/static/"):
            # Always revalidated: a page and its scripts from two releases must not mix.
            response.headers.setdefault("Cache-Control", "no-cache")
        if isinstance(response, web.HTTPException):
            raise response
        return response

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except Refused as exc:
            return exc.response
        except grpc.aio.AioRpcError as exc:
            return render.rpc_error(exc)
        except StoreError as exc:
            return render.error(HTTPStatus.SERVICE_UNAVAILABLE, "UNAVAILABLE", str(exc))

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._check_host and not _loopback_host(request.host):
            return render.error(
                HTTPStatus.MISDIRECTED_REQUEST,
                "PERMISSION_DENIED",
                "this dashboard answers only at a loopback address",
                reason="HOST",
            )
        if request.method == "POST" and not self._same_origin(request):
            return render.error(
                HTTPStatus.FORBIDDEN, "PERMISSION_DENIED", "cross-origin request", reason="ORIGIN"
            )
        if not request.path.startswith("/api/") or request.path in _OPEN_PATHS:
            return await handler(request)
        session = await self._open(request)
        if session is None:
            return _login_needed()
        if request.method == "POST" and not Sessions.csrf_ok(
            session, request.headers.get("X-CSRF-Token")
        ):
            return render.error(
                HTTPStatus.FORBIDDEN,
                "PERMISSION_DENIED",
                "missing or wrong X-CSRF-Token",
                reason="CSRF",
            )
        request[SESSION] = session
        return await handler(request)

    @staticmethod
    def _same_origin(request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not a browser's cross-site request (those carry Origin)
        return origin.partition("://")[2] == request.host

    async def _open(self, request: web.Request) -> Session | None:
        sessions = await self.sessions()
        return sessions.open(request.cookies.get(COOKIE), int(time.time()))

    # -- handlers -----------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.StreamResponse:
        index = STATIC / "index.html"
        if not index.is_file():
            raise web.HTTPNotFound(text="the dashboard's page is not installed")
        return web.FileResponse(index)

    def _session_body(self, session: Session) -> dict[str, object]:
        principal = session.principal
        return {
            "role": principal.role.value,
            "csrf_token": session.csrf_token,
            "bots": principal_bots(self.backend, principal),
            "default_bot": self.backend.default_bot,
            "sandbox": bool(self.backend.sandbox_url),
            "auth": self._guarded,
            "expires": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(session.expires_s)),
        }

    def _with_cookie(self, request: web.Request, body: web.Response, cookie: str) -> web.Response:
        secure = request.secure or request.headers.get("X-Forwarded-Proto") == "https"
        body.set_cookie(
            COOKIE,
            cookie,
            max_age=self.settings.dashboard_session_s,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=secure,
        )
        return body

    async def _session(self, request: web.Request) -> web.Response:
        sessions = await self.sessions()
        session = await self._open(request)
        if session is not None:
            return render.json(self._session_body(session))
        anonymous = sessions.anonymous()
        if anonymous is None:
            return _login_needed()
        cookie, session = sessions.issue(anonymous, int(time.time()))
        return self._with_cookie(request, render.json(self._session_body(session)), cookie)

    async def _login(self, request: web.Request) -> web.Response:
        # JSON only: a form of another site cannot post it (it would need CORS).
        if request.content_type != "application/json":
            return render.error(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                "INVALID_ARGUMENT",
                'send the token as JSON: {"token": "..."}',
            )
        token = text_field(await json_object(request), "token")
        if not token:
            return render.error(
                HTTPStatus.BAD_REQUEST, "INVALID_ARGUMENT", "token: give an API token"
            )
        sessions = await self.sessions()
        principal = sessions.principal_of(token)
        if principal is None:
            log.warning("dashboard: a login from %s with a wrong token", request.remote)
            await asyncio.sleep(_LOGIN_FAILURE_DELAY_S)
            return render.error(
                HTTPStatus.UNAUTHORIZED, "UNAUTHENTICATED", "wrong token", reason="AUTH_INVALID"
            )
        cookie, session = sessions.issue(principal, int(time.time()))
        return self._with_cookie(request, render.json(self._session_body(session)), cookie)

    async def _logout(self, request: web.Request) -> web.Response:
        response = web.Response(status=HTTPStatus.NO_CONTENT)
        response.del_cookie(COOKIE, path="/")
        return response

    async def _events(self, request: web.Request) -> web.StreamResponse:
        return await self._live.handle(request, checked_bot(request, request.query.get("bot", "")))

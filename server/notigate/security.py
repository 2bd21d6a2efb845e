"""Who may call the gateway: bearer-token authentication and TLS for the gRPC port.

* :class:`BearerAuthInterceptor` requires ``authorization: Bearer <token>`` on every RPC
  when any token is configured (``Settings.api_tokens``, the bots file's tokens or
  ``Settings.readonly_tokens``). ``grpc.health.v1.Health`` stays open so orchestrators can
  probe without a secret; reflection is open only with ``Settings.reflection_open``.
  A read-only token may call the methods of :data:`READ_METHODS` (and reflection) only;
  every other call with one gets PERMISSION_DENIED.
* :func:`server_credentials` builds TLS (or, with a client CA, mutual TLS) credentials
  from the certificate files named in the settings.

The presented token is never logged nor echoed in an error message. Rejections are logged
at debug one by one, and as at most one warning per ``log_interval_s`` with their count, so
a stranger's retries cannot flood the log.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import grpc

from notigate import rpc_status
from notigate.config import ConfigError, Settings, TokenBinding

__all__ = [
    "API_SERVICE",
    "HEALTH_PREFIX",
    "READ_METHODS",
    "REFLECTION_PREFIXES",
    "WRITE_METHODS",
    "BearerAuthInterceptor",
    "BotAccess",
    "RejectionLog",
    "Role",
    "auth_interceptor",
    "plaintext_token_warning",
    "server_credentials",
]

log = logging.getLogger(__name__)

HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_PREFIXES = (
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
API_SERVICE = "/notigate.v1.NotificationService/"

# What a read-only token may call. Every method of the service is in exactly one of these two
# sets (a test holds them to the service descriptor), so a new RPC cannot be added without
# deciding whether it reads; a method in neither is refused to read-only tokens all the same.
READ_METHODS = frozenset(
    API_SERVICE + name
    for name in (
        "GetJob",
        "ListJobs",
        "GetStats",
        "WatchEvents",
        "ListSuppressedChats",
        "SearchJobs",
        "ListJobEvents",
        "GetThroughput",
    )
)
WRITE_METHODS = frozenset(
    API_SERVICE + name
    for name in (
        "Send",
        "SendBatch",
        "CancelJob",
        "RetryJob",
        "CancelJobs",
        "RetryJobs",
        "UploadFile",
        "EditMessage",
        "DeleteMessage",
        "UnsuppressChat",
    )
)

Role = Literal["admin", "read_only"]
"""What an accepted token may do: everything, or the reads only."""

_AUTH_KEY = "authorization"
_SCHEME = "bearer"

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]

# Rejected calls are summed up in one warning at most this often.
REJECTION_LOG_INTERVAL_S = 60.0


class RejectionLog:
    """One warning per interval at most, counting the rejections it stands for."""

    def __init__(
        self,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        what: str = "without a valid bearer token",
    ) -> None:
        self._interval_s = interval_s
        self._what = what
        self._clock = clock
        self._count = 0
        self._last: float | None = None

    def rejected(self, method: str, peer: str, reason: rpc_status.Reason) -> None:
        log.debug("rejected %s from %s: %s", method, peer, reason.value)
        self._count += 1
        now = self._clock()
        if self._last is not None and now - self._last < self._interval_s:
            return
        log.warning(
            "rejected %d call(s) %s since the last such warning "
            "(at most one per %.0f s; the latest: %s from %s, %s)",
            self._count,
            self._what,
            self._interval_s,
            method,
            peer,
            reason.value,
        )
        self._count = 0
        self._last = now


class BearerAuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc,unused-ignore]
    """Rejects RPCs without a valid ``authorization: Bearer <token>`` with UNAUTHENTICATED,
    and a read-only token's calls beyond :data:`READ_METHODS` with PERMISSION_DENIED.

    Args:
        tokens: the accepted tokens that may call everything.
        sha256s: the SHA-256 of further such tokens (the bots file's).
        readonly_tokens: the accepted tokens that may only read.
        open_prefixes: method paths (``/package.Service/``) that need no token.
        log_interval_s: the shortest time between two warnings about rejected calls.

    At least one token of any kind is needed. The status carries a google.rpc ErrorInfo with
    reason ``AUTH_MISSING`` (no header, or not a bearer token), ``AUTH_INVALID`` (a bearer
    token that matches none) or ``READ_ONLY_TOKEN`` (a read-only token calling a change).
    """

    def __init__(
        self,
        tokens: Iterable[str],
        *,
        sha256s: Iterable[bytes] = (),
        readonly_tokens: Iterable[str] = (),
        open_prefixes: Sequence[str] = (),
        log_interval_s: float = REJECTION_LOG_INTERVAL_S,
    ) -> None:
        # Tokens are kept only as keyed digests: equal length for every candidate, so
        # compare_digest takes the same time whatever the presented token's length, and
        # no plaintext token sits in this object for a repr or a debugger to show.
        self._key = secrets.token_bytes(32)
        self._digests = tuple(self._digest(t) for t in tokens)
        # Tokens the configuration knows only by their SHA-256 (bound to bots).
        self._sha256s = tuple(sha256s)
        self._readonly_digests = tuple(self._digest(t) for t in readonly_tokens)
        if not self._digests and not self._sha256s and not self._readonly_digests:
            raise ValueError("BearerAuthInterceptor needs at least one token")
        self._open_prefixes = tuple(open_prefixes)
        self._rejections = RejectionLog(log_interval_s)
        self._refusals = RejectionLog(log_interval_s, what="with a read-only token for a change")

    def _digest(self, token: str) -> bytes:
        return hmac.new(self._key, token.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()

    def _role(self, token: str) -> Role | None:
        presented = self._digest(token)
        admin = _any_equal(presented, self._digests)
        if self._sha256s:
            admin |= _any_equal(token_sha256(token), self._sha256s)
        read_only = _any_equal(presented, self._readonly_digests)
        return _role(admin=admin, read_only=read_only)

    def check(
        self, metadata: Iterable[tuple[str, str | bytes]] | None, method: str
    ) -> rpc_status.Reason | None:
        """None when ``metadata`` carries a token that may call ``method``, else the reason
        to reject."""
        # Several authorization headers are ambiguous: rejected rather than guessing which counts.
        token = presented_token(metadata)
        if token is None:
            return rpc_status.Reason.AUTH_MISSING
        role = self._role(token)
        if role is None:
            return rpc_status.Reason.AUTH_INVALID
        if role == "read_only" and not _reads(method):
            return rpc_status.Reason.READ_ONLY_TOKEN
        return None

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        """Pass permitted or open RPCs on; answer the others with their refusal."""
        method: str = handler_call_details.method or ""
        if method.startswith(self._open_prefixes):
            return await continuation(handler_call_details)
        reason = self.check(handler_call_details.invocation_metadata, method)
        if reason is None:
            return await continuation(handler_call_details)
        # Rejected before the method is looked up, so a caller without a token cannot
        # probe which methods exist (no UNIMPLEMENTED vs UNAUTHENTICATED difference).
        if reason == rpc_status.Reason.READ_ONLY_TOKEN:
            return _rejecting_handler(method, reason, self._refusals)
        return _rejecting_handler(method, reason, self._rejections)


def _reads(method: str) -> bool:
    # Reflection only describes the API: a read like the others.
    return method in READ_METHODS or method.startswith(REFLECTION_PREFIXES)


def _any_equal(presented: bytes, digests: Iterable[bytes]) -> bool:
    matched = False
    # No early exit: every configured token is compared, so timing does not tell
    # which one (or whether the first) matched.
    for digest in digests:
        matched |= hmac.compare_digest(presented, digest)
    return matched


def _role(*, admin: bool, read_only: bool) -> Role | None:
    # Settings refuse a token that is both; were it both, it would get the lesser role.
    if read_only:
        return "read_only"
    return "admin" if admin else None


def token_sha256(token: str) -> bytes:
    """The SHA-256 a bots file names a token by (``sha256sum`` of the token)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def presented_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The bearer token of a call's metadata (None: none, or not exactly one)."""
    values = [value for key, value in metadata or () if key.lower() == _AUTH_KEY]
    if len(values) != 1 or not isinstance(values[0], str):
        return None
    scheme, _, token = values[0].strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == _SCHEME and token else None


class BotAccess:
    """Which bots a call's token may use: bound tokens (the bots file) only theirs."""

    def __init__(self, bindings: Iterable[TokenBinding]) -> None:
        self._bots = {b.sha256: b.bots for b in bindings}

    def allowed(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> frozenset[str] | None:
        """The bots the call may use; None: every bot (an unbound token, or no auth)."""
        if not self._bots:
            return None
        token = presented_token(metadata)
        return None if token is None else self._bots.get(token_sha256(token))


def _refusal(method: str, reason: rpc_status.Reason) -> grpc.Status:
    if reason == rpc_status.Reason.READ_ONLY_TOKEN:
        name = method.rpartition("/")[2] or method
        return rpc_status.permission_denied(
            f"this token may only read: {name} is a change (use an API token for it)",
            reason=reason,
            metadata={"method": name},
        )
    message = (
        "missing bearer token: send metadata 'authorization: Bearer <token>'"
        if reason == rpc_status.Reason.AUTH_MISSING
        else "invalid bearer token"
    )
    return rpc_status.unauthenticated(message, reason=reason)


def _rejecting_handler(
    method: str, reason: rpc_status.Reason, rejections: RejectionLog
) -> grpc.RpcMethodHandler:
    status = _refusal(method, reason)

    async def reject(_requests: Any, context: grpc.aio.ServicerContext) -> None:
        rejections.rejected(method, context.peer(), reason)
        await rpc_status.abort(context, status)

    # A stream-stream handler serves every kind of call: on the wire each RPC is a pair
    # of message streams, and this one ends before reading any request. No deserializer:
    # the request bytes are never parsed.
    return grpc.stream_stream_rpc_method_handler(reject)


def auth_interceptor(settings: Settings) -> BearerAuthInterceptor | None:
    """The interceptor ``settings`` ask for, or None when no token is configured."""
    if not settings.has_tokens:
        return None
    open_prefixes = [HEALTH_PREFIX]
    if settings.reflection_open:
        open_prefixes.extend(REFLECTION_PREFIXES)
    return BearerAuthInterceptor(
        settings.api_tokens,
        sha256s=[b.sha256 for b in settings.token_bindings],
        readonly_tokens=settings.readonly_tokens,
        open_prefixes=open_prefixes,
    )


def _read(path: Path, variable: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read {path}: {exc.strerror}") from None


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials for the gRPC port, or None for plaintext.

    With ``tls_client_ca_file`` set, clients must present a certificate signed by that
    CA (mutual TLS).

    Raises:
        ConfigError: a file cannot be read, or only one of certificate and key is set.
    """
    cert_file, key_file = settings.tls_cert_file, settings.tls_key_file
    if cert_file is None and key_file is None:
        return None
    if cert_file is None or key_file is None:
        raise ConfigError("NOTIGATE_TLS_CERT and NOTIGATE_TLS_KEY must be set together")
    key = _read(key_file, "NOTIGATE_TLS_KEY")
    chain = _read(cert_file, "NOTIGATE_TLS_CERT")
    client_ca = None
    if settings.tls_client_ca_file is not None:
        client_ca = _read(settings.tls_client_ca_file, "NOTIGATE_TLS_CLIENT_CA")
    return grpc.ssl_server_credentials(
        [(key, chain)],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def plaintext_token_warning(settings: Settings) -> str | None:
    """A warning when API tokens would cross a network unencrypted, else None."""
    if not settings.has_tokens or settings.tls_cert_file:
        return None
    host = settings.listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a host name: it may resolve to a public address
    return (
        f"API tokens are checked on {settings.listen} without TLS: they travel in "
        "plaintext; set NOTIGATE_TLS_CERT and NOTIGATE_TLS_KEY"
    )

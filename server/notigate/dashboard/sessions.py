"""Dashboard logins: who a session is, its cookie, and the CSRF token of its actions.

A login exchanges one of the gateway's API tokens for a session cookie; the cookie never
holds the token. It names the token by a short digest and carries an expiry and a random
nonce, signed with a key every gateway on the store shares (:mod:`notigate.dashboard.secret`).
So a replica behind the same load balancer accepts a session another one opened, and
taking a token out of the configuration ends the sessions opened with it (its digest no
longer names a token). The CSRF token is derived from the session's nonce: a page of
another origin can neither read it nor make the browser send the cookie (SameSite=Strict).

Without any API token the gateway serves the dashboard to loopback only (config.py refuses
otherwise unless told), and every visitor is an administrator; the cookie and the CSRF
token still guard the actions against other sites' pages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

from notigate.config import Settings
from notigate.security import token_sha256

__all__ = ["COOKIE", "Principal", "Role", "Session", "Sessions"]

COOKIE = "notigate_session"
_VERSION = "v1"
# The digest a cookie names its token by: enough to tell configured tokens apart, too
# short to be worth attacking (the signature is what makes a cookie unforgeable).
_REF_BYTES = 12
# Without authentication every session is the anonymous administrator.
_ANONYMOUS = "-"


class Role(StrEnum):
    """What a session may do."""

    ADMIN = "admin"
    READ_ONLY = "read_only"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a token (or, without authentication, anyone) is on the dashboard."""

    ref: str
    role: Role
    # The bots the token may use; None: every bot.
    bots: frozenset[str] | None

    def may_use(self, bot: str) -> bool:
        """Whether the principal may see and change ``bot``'s jobs."""
        return self.bots is None or bot in self.bots

    @property
    def may_act(self) -> bool:
        """Whether the principal may change anything (retry, cancel, unsuppress)."""
        return self.role is Role.ADMIN


@dataclass(frozen=True, slots=True)
class Session:
    """An open session: its principal, when it ends and its CSRF token."""

    principal: Principal
    expires_s: int
    csrf_token: str


def _ref(sha256: bytes) -> str:
    return base64.urlsafe_b64encode(sha256[:_REF_BYTES]).decode().rstrip("=")


class Sessions:
    """Opens and checks sessions for ``settings``' tokens, signed with ``key``."""

    def __init__(self, settings: Settings, key: bytes) -> None:
        self._key = key
        self._lifetime_s = settings.dashboard_session_s
        # Digest of each accepted token -> its principal. Digests, not tokens: a lookup
        # by digest takes the same time whichever token matches, and no plaintext token
        # sits in this object.
        self._by_sha256: dict[bytes, Principal] = {}
        for binding in settings.token_bindings:
            self._add(binding.sha256, Role.ADMIN, binding.bots)
        for token in settings.api_tokens:
            self._add(token_sha256(token), Role.ADMIN, None)
        for token in settings.readonly_tokens:
            self._add(token_sha256(token), Role.READ_ONLY, None)
        self._by_ref = {p.ref: p for p in self._by_sha256.values()}
        self.auth = bool(self._by_sha256)

    def _add(self, sha256: bytes, role: Role, bots: frozenset[str] | None) -> None:
        self._by_sha256.setdefault(sha256, Principal(_ref(sha256), role, bots))

    def principal_of(self, token: str) -> Principal | None:
        """The principal ``token`` logs in as, or None when no configured token matches."""
        return self._by_sha256.get(token_sha256(token)) if self.auth else self.anonymous()

    def anonymous(self) -> Principal | None:
        """The principal of every visitor when no token is configured, else None."""
        return None if self.auth else Principal(_ANONYMOUS, Role.ADMIN, None)

    def _sign(self, text: str) -> str:
        mac = hmac.new(self._key, text.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def _csrf(self, nonce: str) -> str:
        return self._sign(f"csrf.{nonce}")

    def issue(self, principal: Principal, now_s: int) -> tuple[str, Session]:
        """A new session of ``principal``: the cookie's value and the session."""
        expires = now_s + self._lifetime_s
        nonce = secrets.token_urlsafe(16)
        body = f"{_VERSION}.{principal.ref}.{expires}.{nonce}"
        session = Session(principal, expires, self._csrf(nonce))
        return f"{body}.{self._sign(body)}", session

    def open(self, cookie: str | None, now_s: int) -> Session | None:
        """The session ``cookie`` stands for, or None (absent, forged, expired, or its
        token is no longer configured)."""
        if not cookie:
            return None
        body, _, signature = cookie.rpartition(".")
        parts = body.split(".")
        if len(parts) != 4 or parts[0] != _VERSION:
            return None
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        _, ref, expires, nonce = parts
        if not expires.isdigit() or int(expires) <= now_s:
            return None
        principal = self._by_ref.get(ref) if self.auth else self.anonymous()
        if principal is None or principal.ref != ref:
            return None
        return Session(principal, int(expires), self._csrf(nonce))

    @staticmethod
    def csrf_ok(session: Session, presented: str | None) -> bool:
        """Whether an action's ``X-CSRF-Token`` header is the session's."""
        return presented is not None and hmac.compare_digest(presented, session.csrf_token)

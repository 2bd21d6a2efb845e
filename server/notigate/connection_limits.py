"""Bounds on what a client can hold open on the gRPC port, before it authenticates.

Every limit is a grpc core channel argument, enforced in C before a call reaches Python:

* a connection that has not finished its handshake (TLS, or the HTTP/2 preface and
  SETTINGS) within ``grpc_handshake_timeout_ms`` is closed;
* one with no call in flight for ``grpc_max_connection_idle_ms`` gets a GOAWAY and closes;
  every connection gets one after ``grpc_max_connection_age_ms`` (with jitter), and its
  calls then have ``grpc_max_connection_age_grace_ms`` to finish, so a stream held open
  forever (health Watch needs no token) cannot pin a connection either;
* keepalive: the server pings quiet connections to find dead peers, and answers a client
  that pings more often than ``grpc_min_ping_interval_ms`` ``grpc_max_ping_strikes`` times
  with GOAWAY ``ENHANCE_YOUR_CALM``;
* ``grpc_max_concurrent_streams`` calls at once per connection;
* ``grpc_max_connections`` (``grpc.max_allowed_incoming_connections``): a connection
  beyond the cap is closed as soon as it is accepted, before it costs a handshake, so
  established clients keep being served. The cap counts per listening address.

Grpc clients reconnect transparently after a GOAWAY, so well-behaved clients do not notice
the idle and age limits.
"""

from __future__ import annotations

import logging
import resource

from notigate.config import Settings

__all__ = ["ensure_descriptors", "server_options"]

log = logging.getLogger(__name__)

# Descriptors the gateway needs besides client connections: Redis, the Bot API pool,
# the metrics endpoint, an embedded Valkey's pipes, Python's own files.
_FD_RESERVE = 256


def server_options(settings: Settings) -> list[tuple[str, int]]:
    """The grpc.aio.server options for ``settings`` (message sizes and connection limits)."""
    s = settings
    options = [
        ("grpc.max_receive_message_length", s.max_message_bytes),
        ("grpc.max_send_message_length", 4 * s.max_message_bytes),
        # grpc's default SO_REUSEPORT lets a second server bind the same port.
        ("grpc.so_reuseport", 0),
        ("grpc.server_handshake_timeout_ms", s.grpc_handshake_timeout_ms),
        ("grpc.max_concurrent_streams", s.grpc_max_concurrent_streams),
        ("grpc.keepalive_time_ms", s.grpc_keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", s.grpc_keepalive_timeout_ms),
        # Clients may keep an idle channel warm with pings (at the permitted spacing);
        # the idle limit below still closes it, pings do not count as activity.
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", s.grpc_min_ping_interval_ms),
        ("grpc.http2.max_ping_strikes", s.grpc_max_ping_strikes),
    ]
    # 0 turns a limit off (grpc core's default: unbounded).
    if s.grpc_max_connection_idle_ms:
        options.append(("grpc.max_connection_idle_ms", s.grpc_max_connection_idle_ms))
    if s.grpc_max_connection_age_ms:
        options.append(("grpc.max_connection_age_ms", s.grpc_max_connection_age_ms))
        options.append(("grpc.max_connection_age_grace_ms", s.grpc_max_connection_age_grace_ms))
    if s.grpc_max_connections:
        options.append(("grpc.max_allowed_incoming_connections", s.grpc_max_connections))
    return options


def ensure_descriptors(settings: Settings) -> None:
    """Raise the soft open-files limit so the connection cap can be reached; warn if not.

    A cap above what the process may open would let strangers exhaust descriptors before
    the cap refuses them, and then Redis and Telegram connections fail too.
    """
    if not settings.grpc_max_connections:
        return
    # Each bot's sends in flight hold a connection each.
    sends = sum(settings.for_bot(bot).concurrency for bot in settings.bot_list())
    needed = settings.grpc_max_connections + sends + _FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass  # reported below
    if soft < needed:
        log.warning(
            "NOTIGATE_GRPC_MAX_CONNECTIONS=%d needs about %d open files, the process may "
            "open %d (ulimit -n): lower the cap or raise the limit",
            settings.grpc_max_connections,
            needed,
            soft,
        )

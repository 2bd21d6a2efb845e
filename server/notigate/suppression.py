"""Suppressed chats in the API's terms: the ListSuppressedChats page token and the
``pb.SuppressedChat`` view of a stored suppression.

A token carries the position (suppression time in ms, chat id) of the last chat on a
page; like ListJobs' (:mod:`notigate.pagination`), it is opaque, canonical and refused
when we did not issue it, and the two kinds are never taken for each other.
"""

from __future__ import annotations

import re
import struct

from notigate.job_views import timestamp
from notigate.pagination import opaque, unwrap
from notigate.queue import SuppressedChat, SuppressionCursor
from notigate_client import pb

__all__ = ["decode_suppression_token", "encode_suppression_token", "suppressed_to_pb"]

# Not ListJobs' version byte: a ListJobs token is refused here, and this one there.
_TOKEN_VERSION = 0x53
# version, suppression time (ms); then the chat id (ASCII).
_TOKEN = struct.Struct(">Bq")
# A chat id as Send takes it (notigate.validation): numeric, or a channel's @username.
_CHAT = re.compile(r"-?[0-9]{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31}")
_MAX_TOKEN_CHARS = 80


def encode_suppression_token(cursor: SuppressionCursor) -> str:
    """The opaque token of a position in the listing."""
    if not _CHAT.fullmatch(cursor.chat_id) or cursor.suppressed_ms < 0:
        raise ValueError(f"cannot encode page token {cursor}")
    return opaque(
        _TOKEN.pack(_TOKEN_VERSION, cursor.suppressed_ms) + cursor.chat_id.encode("ascii")
    )


def decode_suppression_token(token: str) -> SuppressionCursor | None:
    """The position in a token made by :func:`encode_suppression_token`, else None."""
    raw = unwrap(token, _MAX_TOKEN_CHARS)
    if raw is None or len(raw) <= _TOKEN.size:
        return None
    version, ms = _TOKEN.unpack_from(raw)
    chat = raw[_TOKEN.size :].decode("ascii", errors="replace")
    if version != _TOKEN_VERSION or ms < 0 or not _CHAT.fullmatch(chat):
        return None
    cursor = SuppressionCursor(ms, chat)
    # Only the canonical spelling is accepted, so equal tokens always mean equal positions.
    if encode_suppression_token(cursor) != token:
        return None
    return cursor


def suppressed_to_pb(chat: SuppressedChat, bot: str) -> pb.SuppressedChat:
    """The API view of a stored suppression of ``bot``."""
    view = pb.SuppressedChat(chat_id=chat.chat_id, reason=chat.reason, job_id=chat.job_id, bot=bot)
    view.suppress_time.CopyFrom(timestamp(chat.suppressed_ms))
    return view

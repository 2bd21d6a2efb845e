"""The ListJobs page token: an opaque, canonical spelling of where a listing continues.

A token carries the state being listed and the index position (score, job id) of the last
job on the page. Validation (:func:`notigate.validation.validate_list`) decodes it to refuse
tokens we never issued; the service encodes the next one and decodes the one it is given.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from typing import NamedTuple

from notigate.queue.job_ids import JOB_ID
from notigate_client import pb

__all__ = ["JOB_ID", "PageToken", "decode_page_token", "encode_page_token", "opaque", "unwrap"]


_PAGE_TOKEN_VERSION = 2
# version, state, score of the last listed job; then its id (ASCII digits, may be empty).
# Big-endian with nothing optional, so every position has one canonical token.
_PAGE_TOKEN = struct.Struct(">BBd")


def opaque(raw: bytes) -> str:
    """``raw`` as a token: URL-safe base64 without its padding (the listings' tokens)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def unwrap(token: str, max_chars: int) -> bytes | None:
    """The bytes of a token made by :func:`opaque` of at most ``max_chars``, else None."""
    if not token.isascii() or len(token) > max_chars:
        return None
    try:
        return base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None


class PageToken(NamedTuple):
    """Where a ListJobs listing continues: in ``state``, after the job ``job_id`` whose
    index score was ``score`` (``job_id`` empty: from the start of ``state``)."""

    state: int
    score: float = 0.0
    job_id: str = ""


def encode_page_token(token: PageToken) -> str:
    """Build the opaque ListJobs page token."""
    state, score, job_id = token
    if not 0 <= state <= 0xFF or (job_id and not JOB_ID.fullmatch(job_id)):
        raise ValueError(f"cannot encode page token {token}")
    return opaque(_PAGE_TOKEN.pack(_PAGE_TOKEN_VERSION, state, score) + job_id.encode("ascii"))


def decode_page_token(token: str) -> PageToken | None:
    """The position in a token made by :func:`encode_page_token`, else None."""
    raw = unwrap(token, 64)
    if raw is None or len(raw) < _PAGE_TOKEN.size:
        return None
    version, state, score = _PAGE_TOKEN.unpack_from(raw)
    job_id = raw[_PAGE_TOKEN.size :].decode("ascii", errors="replace")
    if version != _PAGE_TOKEN_VERSION or state not in pb.JobState.values():
        return None
    if not math.isfinite(score) or (job_id and not JOB_ID.fullmatch(job_id)):
        return None
    decoded = PageToken(state, score, job_id)
    # Only the canonical spelling is accepted, so equal tokens always mean equal positions.
    if encode_page_token(decoded) != token:
        return None
    return decoded

"""The SearchJobs page token: where a search continues, in the canonical spelling the
listings use (see :mod:`notigate.pagination`).

A search walks one index (a chat's) or the state indexes in turn; the token names the
walk, the state (a state walk), and the index position (score, job id) of the last job
examined (job id empty: from the start of the state).
"""

from __future__ import annotations

import math
import struct
from enum import IntEnum
from typing import NamedTuple

from notigate.pagination import JOB_ID, opaque, unwrap
from notigate_client import pb

__all__ = ["SearchToken", "Walk", "decode_search_token", "encode_search_token"]

_VERSION = 1
# version, walk, state, score; then the job id (ASCII, may be empty). Nothing optional.
_TOKEN = struct.Struct(">BBBd")
_STATES = frozenset(pb.JobState.values()) - {pb.JOB_STATE_UNSPECIFIED}


class Walk(IntEnum):
    """What a search reads."""

    STATES = 1  # every state's index, in JobState order
    CHAT = 2  # one chat's index


class SearchToken(NamedTuple):
    """Where a search continues: in ``walk`` (and ``state``, walking the states), after
    the job ``job_id`` whose index score was ``score`` (empty: from the state's start)."""

    walk: Walk
    state: int = pb.JOB_STATE_UNSPECIFIED
    score: float = 0.0
    job_id: str = ""


def encode_search_token(token: SearchToken) -> str:
    """Build the opaque SearchJobs page token."""
    walk, state, score, job_id = token
    named = state in _STATES if walk is Walk.STATES else state == pb.JOB_STATE_UNSPECIFIED
    if not named or (job_id and not JOB_ID.fullmatch(job_id)):
        raise ValueError(f"cannot encode search token {token}")
    if walk is Walk.CHAT and not job_id:
        raise ValueError(f"a chat walk continues after a job: {token}")
    return opaque(_TOKEN.pack(_VERSION, walk, state, score) + job_id.encode("ascii"))


def decode_search_token(token: str) -> SearchToken | None:
    """The position in a token made by :func:`encode_search_token`, else None."""
    raw = unwrap(token, 64)
    if raw is None or len(raw) < _TOKEN.size:
        return None
    version, walk, state, score = _TOKEN.unpack_from(raw)
    job_id = raw[_TOKEN.size :].decode("ascii", errors="replace")
    if version != _VERSION or not math.isfinite(score):
        return None
    try:
        decoded = SearchToken(Walk(walk), state, score, job_id)
        canonical = encode_search_token(decoded)
    except ValueError:
        return None
    return decoded if canonical == token else None

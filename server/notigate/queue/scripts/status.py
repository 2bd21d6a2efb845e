"""The codes the queue's scripts return, shared by all of them.

Negative codes are the shared refusals, each with one meaning in every script (as
BullMQ's ``ErrorCode``); ``OK`` is the plain success. A script with several successful
outcomes has its own :class:`~enum.IntEnum` of positive codes beside its wrapper.
Every enum a wrapper declares becomes Lua constants of the same names in its script
(``-- @include codes``), so Python and Lua cannot disagree on a value.
"""

from __future__ import annotations

from enum import IntEnum

from notigate.errors import JobNotFound, JobStateConflict


class Status(IntEnum):
    """Outcomes every script may return."""

    OK = 1
    # The job's hash does not exist (never created, trimmed by retention, or lost).
    JOB_NOT_FOUND = -1
    # The caller's lease token no longer holds the job: another worker may own it now.
    LEASE_LOST = -2
    # The job is in a state the change does not apply to (the reply names the state).
    WRONG_STATE = -3
    # The id names a job created at another time than the caller's (the store lost its
    # data and handed the id out again).
    OTHER_JOB = -4


def to_error(status: Status, job_id: str, state: str, operation: str) -> Exception:
    """The domain error a refusal of a management call (cancel, retry) stands for."""
    if status is Status.WRONG_STATE:
        return JobStateConflict(job_id, state, operation)
    return JobNotFound(job_id)

"""Why an upload was refused. Whatever was stored of it is gone when one is raised.

A Redis failure is not a refusal: it surfaces as the queue's own
:class:`~notigate.errors.StoreError` family, as for every other call.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from notigate.errors import NotigateError
from notigate.validation import FieldViolation


class RefusalKind(StrEnum):
    """What kind of refusal it was, for the status a client gets."""

    # Bad metadata, a stream out of order, more or fewer bytes than declared.
    INVALID = "invalid"
    # The declared size is over UploadLimits.max_file_bytes.
    TOO_LARGE = "too_large"
    # The uploads already hold UploadLimits.budget_bytes: try again later.
    BUDGET_EXHAUSTED = "budget_exhausted"
    # The upload is gone mid-stream: trimmed after its stream stalled for
    # UploadLimits.partial_ttl_s, or unknown.
    EXPIRED = "expired"


class UploadRefused(NotigateError):
    """An upload was refused, and nothing of it is kept.

    ``violations`` point at the offending field (``metadata.filename``, ``chunk``...)
    when there is one; ``retry_after_s`` (BUDGET_EXHAUSTED only) is when the next stored
    upload may be trimmed, when one is due at all.
    """

    def __init__(
        self,
        kind: RefusalKind,
        message: str,
        violations: Sequence[FieldViolation] = (),
        *,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.violations = tuple(violations)
        self.retry_after_s = retry_after_s


def violation(field: str, description: str) -> FieldViolation:
    return FieldViolation(field=field, description=description)


def invalid(field: str, description: str) -> UploadRefused:
    """An INVALID refusal naming one field."""
    return UploadRefused(
        RefusalKind.INVALID, f"{field}: {description}", [violation(field, description)]
    )

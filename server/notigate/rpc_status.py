"""The one place that chooses gRPC status codes and attaches google.rpc error details.

Each builder returns a ``grpc.Status`` whose trailing metadata carries a serialized
``google.rpc.Status`` under ``grpc-status-details-bin`` (the richer error model of AIP-193):

==================== ===========================================================
code                 details
==================== ===========================================================
INVALID_ARGUMENT     BadRequest (field violations), ErrorInfo
NOT_FOUND            ResourceInfo, ErrorInfo
ALREADY_EXISTS       ResourceInfo (the existing resource, when there is one), ErrorInfo
FAILED_PRECONDITION  PreconditionFailure, ErrorInfo
UNAVAILABLE          ErrorInfo, RetryInfo
RESOURCE_EXHAUSTED   ErrorInfo, RetryInfo (when a retry delay is known)
UNAUTHENTICATED      ErrorInfo
PERMISSION_DENIED    ErrorInfo
INTERNAL             ErrorInfo
==================== ===========================================================

Every ErrorInfo has domain ``notigate`` and a machine-readable ``reason`` (see
:class:`Reason`). Domain exceptions stay out of this module: the servicer maps its own
exceptions to these builders and aborts the RPC with :func:`abort`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any, NoReturn

import grpc

# googleapis-common-protos ships .pyi files but no py.typed marker, so mypy will not read them.
from google.rpc import (  # type: ignore[import-untyped,unused-ignore]
    code_pb2,
    error_details_pb2,
    status_pb2,
)
from grpc_status import rpc_status

__all__ = [
    "DETAILS_METADATA_KEY",
    "DOMAIN",
    "MAX_DETAILS_BYTES",
    "Reason",
    "abort",
    "already_exists",
    "failed_precondition",
    "internal",
    "invalid_argument",
    "not_found",
    "precondition_violation",
    "resource_exhausted",
    "unauthenticated",
    "unavailable",
]

DOMAIN = "notigate"
DETAILS_METADATA_KEY = "grpc-status-details-bin"

# gRPC clients reject response headers above 8 KiB by default (grpc.max_metadata_size), and
# the details travel base64-encoded (x4/3). Keeping the serialized details under 4 KiB leaves
# room for the rest of the trailers, so a batch with 1000 bad messages still produces an
# INVALID_ARGUMENT the client can read rather than a transport error.
MAX_DETAILS_BYTES = 4096

# AIP-193: UPPER_SNAKE_CASE, at most 63 characters.
_REASON = re.compile(r"[A-Z][A-Z0-9_]{0,61}[A-Z0-9]")


class Reason(StrEnum):
    """ErrorInfo reasons the server uses; clients may switch on them."""

    INVALID_REQUEST = "INVALID_REQUEST"
    JOB_NOT_FOUND = "JOB_NOT_FOUND"
    CHAT_NOT_SUPPRESSED = "CHAT_NOT_SUPPRESSED"
    JOB_NOT_CANCELLABLE = "JOB_NOT_CANCELLABLE"
    JOB_NOT_RETRYABLE = "JOB_NOT_RETRYABLE"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    MESSAGE_NOT_EDITABLE = "MESSAGE_NOT_EDITABLE"
    MESSAGE_NOT_DELETABLE = "MESSAGE_NOT_DELETABLE"
    UPLOAD_BUDGET_EXHAUSTED = "UPLOAD_BUDGET_EXHAUSTED"
    REDIS_UNAVAILABLE = "REDIS_UNAVAILABLE"
    QUEUE_FULL = "QUEUE_FULL"
    AUTH_MISSING = "AUTH_MISSING"
    AUTH_INVALID = "AUTH_INVALID"
    BOT_NOT_ALLOWED = "BOT_NOT_ALLOWED"
    READ_ONLY_TOKEN = "READ_ONLY_TOKEN"  # noqa: S105 (a reason, not a secret)
    BOT_UNKNOWN = "BOT_UNKNOWN"
    INTERNAL = "INTERNAL"


def _error_info(reason: str, metadata: Mapping[str, str] | None) -> Any:
    if not _REASON.fullmatch(reason):
        raise ValueError(f"ErrorInfo reason {reason!r} is not UPPER_SNAKE_CASE (AIP-193)")
    return error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=metadata or {})


def _retry_info(retry_after_s: float) -> Any:
    if not math.isfinite(retry_after_s) or retry_after_s < 0:
        raise ValueError(f"retry_after_s must be finite and >= 0, got {retry_after_s}")
    info = error_details_pb2.RetryInfo()
    info.retry_delay.FromNanoseconds(round(retry_after_s * 1e9))
    return info


def _status(code: int, message: str, details: Iterable[Any]) -> grpc.Status:
    status = status_pb2.Status(code=code, message=message)
    for detail in details:
        status.details.add().Pack(detail)
    return rpc_status.to_status(status)


def invalid_argument(
    violations: Sequence[Any],
    message: str | None = None,
    *,
    reason: str = Reason.INVALID_REQUEST,
) -> grpc.Status:
    """INVALID_ARGUMENT with a BadRequest listing ``violations`` (``BadRequest.FieldViolation``).

    When the violations do not fit in :data:`MAX_DETAILS_BYTES`, the first ones are kept and
    the message says how many were left out. The default message names the first violation,
    for clients that only show the status message.
    """
    if not violations and message is None:
        raise ValueError("invalid_argument needs violations or a message")
    bad_request = error_details_pb2.BadRequest()
    size = 0
    for violation in violations:
        # Each repeated entry costs its own size plus a tag and a length prefix (<= 4 bytes).
        cost = violation.ByteSize() + 4
        if size + cost > MAX_DETAILS_BYTES - 512:  # 512: message, ErrorInfo, Any wrappers
            break
        bad_request.field_violations.append(violation)
        size += cost
    kept, total = len(bad_request.field_violations), len(violations)
    if message is None:
        first = violations[0]
        message = f"invalid request: {first.field}: {first.description}"
        if total > 1:
            message += f" (and {total - 1} more)"
    if kept < total:
        message += f" [details list {kept} of {total} violations]"
    # A very long caller-supplied message must not defeat the size budget either.
    message = message[:1024]
    return _status(
        code_pb2.INVALID_ARGUMENT,
        message,
        [bad_request, _error_info(reason, {"violations": str(total)})],
    )


def not_found(
    resource_type: str,
    name: str,
    message: str | None = None,
    *,
    reason: str = Reason.JOB_NOT_FOUND,
    description: str = "not found",
) -> grpc.Status:
    """NOT_FOUND with a ResourceInfo naming the missing resource (e.g. ``"job", "42"``).

    ``message`` should say why it is missing when that is known (e.g. trimmed by retention);
    ``description`` is the ResourceInfo's short version of it.
    """
    info = error_details_pb2.ResourceInfo(
        resource_type=resource_type, resource_name=name, description=description
    )
    return _status(
        code_pb2.NOT_FOUND,
        message or f"{resource_type} {name} not found",
        [info, _error_info(reason, {"resource_type": resource_type, "resource_name": name})],
    )


def already_exists(
    resource_type: str,
    name: str,
    message: str,
    *,
    reason: str = Reason.IDEMPOTENCY_KEY_REUSED,
    metadata: Mapping[str, str] | None = None,
) -> grpc.Status:
    """ALREADY_EXISTS: what the request would create exists already, as ``name``.

    The ResourceInfo names the existing resource (left out when ``name`` is "": nothing
    exists to point at); the ErrorInfo carries ``reason`` and ``metadata``. For
    IDEMPOTENCY_KEY_REUSED the resource is the key's first job and the metadata holds
    ``idempotency_key``, ``job_id`` and, in a batch, ``index`` (of ``messages[i]``).
    """
    details: list[Any] = []
    if name:
        details.append(
            error_details_pb2.ResourceInfo(
                resource_type=resource_type, resource_name=name, description="already exists"
            )
        )
    details.append(_error_info(reason, metadata))
    return _status(code_pb2.ALREADY_EXISTS, message, details)


def precondition_violation(type_: str, subject: str, description: str) -> Any:
    """One ``PreconditionFailure.Violation``, e.g. ``("JOB_STATE", "jobs/42", "is COMPLETED")``."""
    return error_details_pb2.PreconditionFailure.Violation(
        type=type_, subject=subject, description=description
    )


def failed_precondition(
    violations: Sequence[Any],
    *,
    reason: str,
    message: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> grpc.Status:
    """FAILED_PRECONDITION with a PreconditionFailure and an ErrorInfo carrying ``reason``.

    ``violations`` are ``PreconditionFailure.Violation`` (see :func:`precondition_violation`);
    the default message joins their descriptions.
    """
    if not violations and message is None:
        raise ValueError("failed_precondition needs violations or a message")
    failure = error_details_pb2.PreconditionFailure(violations=list(violations))
    if message is None:
        message = "; ".join(v.description for v in violations)
    return _status(code_pb2.FAILED_PRECONDITION, message, [failure, _error_info(reason, metadata)])


def unavailable(
    message: str,
    *,
    reason: str = Reason.REDIS_UNAVAILABLE,
    retry_after_s: float = 1.0,
) -> grpc.Status:
    """UNAVAILABLE: the request was not carried out and may be retried after ``retry_after_s``.

    Only use it when nothing was stored: clients retry UNAVAILABLE automatically.
    """
    return _status(
        code_pb2.UNAVAILABLE,
        message,
        [_error_info(reason, None), _retry_info(retry_after_s)],
    )


def resource_exhausted(
    message: str,
    *,
    reason: str = Reason.QUEUE_FULL,
    retry_after_s: float | None = None,
) -> grpc.Status:
    """RESOURCE_EXHAUSTED, with a RetryInfo when the server knows when to come back."""
    details: list[Any] = [_error_info(reason, None)]
    if retry_after_s is not None:
        details.append(_retry_info(retry_after_s))
    return _status(code_pb2.RESOURCE_EXHAUSTED, message, details)


def unauthenticated(
    message: str = "missing or invalid bearer token",
    *,
    reason: str = Reason.AUTH_INVALID,
) -> grpc.Status:
    """UNAUTHENTICATED with an ErrorInfo; the message must never echo the presented token."""
    return _status(code_pb2.UNAUTHENTICATED, message, [_error_info(reason, None)])


def permission_denied(
    message: str, *, reason: str = Reason.BOT_NOT_ALLOWED, metadata: Mapping[str, str] | None = None
) -> grpc.Status:
    """PERMISSION_DENIED with an ErrorInfo: the caller is known but may not do this."""
    return _status(code_pb2.PERMISSION_DENIED, message, [_error_info(reason, metadata)])


def internal(message: str = "internal error", *, reason: str = Reason.INTERNAL) -> grpc.Status:
    """INTERNAL for unexpected failures; keep exception text and tracebacks out of ``message``."""
    return _status(code_pb2.INTERNAL, message, [_error_info(reason, None)])


async def abort(context: grpc.aio.ServicerContext, status: grpc.Status) -> NoReturn:
    """End the RPC of ``context`` with ``status`` (raises; never returns).

    grpc.aio's ``abort_with_status`` replaces any trailing metadata the handler set earlier
    (checked against grpcio 1.85), so this calls ``abort`` with the earlier metadata kept,
    minus a stale details entry, and the status details appended.
    """
    if status.code == grpc.StatusCode.OK:
        raise ValueError("cannot abort with status OK")
    earlier = tuple(
        (key, value)
        for key, value in (context.trailing_metadata() or ())
        if key != DETAILS_METADATA_KEY
    )
    await context.abort(status.code, status.details, earlier + tuple(status.trailing_metadata))
    # context.abort always raises; this keeps the NoReturn contract if an implementation doesn't.
    raise AssertionError("grpc.aio.ServicerContext.abort returned")

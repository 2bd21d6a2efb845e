"""Exceptions raised by the notigate client, and their mapping from gRPC errors.

::

    NotigateError                 any failed call (.code, .message, .reason, .metadata)
    ├── InvalidArgumentError      .violations: [(field, description), ...]
    ├── NotFoundError             .resource_type, .resource_name
    ├── AlreadyExistsError        .job_id, .idempotency_key, .index (idempotency key reused)
    ├── FailedPreconditionError   .violations: [(type, subject, description), ...]
    ├── UnavailableError          .retry_after_s (retried automatically by the clients)
    ├── DeadlineExceededError     also a TimeoutError (a call's or a wait's deadline passed)
    ├── ResourceExhaustedError    .retry_after_s
    ├── UnauthenticatedError
    └── PermissionDeniedError     .bot (reason BOT_NOT_ALLOWED: the token may not use it;
                                  READ_ONLY_TOKEN: the token may only read)

A request naming a bot the gateway does not serve is an InvalidArgumentError with reason
``BOT_UNKNOWN`` (its message names the gateway's bots).

The details come from the ``google.rpc.Status`` the server puts in the trailing metadata
(``grpc-status-details-bin``); the original ``grpc.RpcError`` is the ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

# googleapis-common-protos ships .pyi files but no py.typed marker, so mypy will not read them.
from google.rpc import (  # type: ignore[import-untyped,unused-ignore]
    error_details_pb2,
    status_pb2,
)

__all__ = [
    "AlreadyExistsError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "NotFoundError",
    "NotigateError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "from_rpc_error",
]

DETAILS_METADATA_KEY = "grpc-status-details-bin"


class NotigateError(Exception):
    """A notigate call failed.

    ``code`` is the gRPC status code, ``message`` the server's status message, and
    ``reason``/``metadata`` the ErrorInfo the server attached ("" / {} when none).
    """

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason
        self.metadata = metadata or {}

    def __str__(self) -> str:
        name = self.code.name if self.code is not None else "ERROR"
        return f"{name}: {self.message}"


class InvalidArgumentError(NotigateError):
    """The request was rejected by validation; ``violations`` lists ``(field, description)``."""

    def __init__(
        self, message: str, *, violations: list[tuple[str, str]] | None = None, **kw: Any
    ) -> None:
        super().__init__(message, **kw)
        self.violations = violations or []


class NotFoundError(NotigateError):
    """The named resource (a job) does not exist."""

    def __init__(
        self, message: str, *, resource_type: str = "", resource_name: str = "", **kw: Any
    ) -> None:
        super().__init__(message, **kw)
        self.resource_type = resource_type
        self.resource_name = resource_name


class AlreadyExistsError(NotigateError):
    """What the request would create exists already.

    For reason ``IDEMPOTENCY_KEY_REUSED`` the idempotency key was used before for a
    different message: nothing was stored (for a batch: nothing of it). ``job_id`` is the
    job the key was first used for, ``idempotency_key`` the key, and ``index`` the
    position of the conflicting message in a batch (None for a single send).
    """

    def __init__(
        self,
        message: str,
        *,
        job_id: str = "",
        idempotency_key: str = "",
        index: int | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.job_id = job_id
        self.idempotency_key = idempotency_key
        self.index = index


class FailedPreconditionError(NotigateError):
    """The resource is in the wrong state; ``violations`` lists ``(type, subject, description)``."""

    def __init__(
        self, message: str, *, violations: list[tuple[str, str, str]] | None = None, **kw: Any
    ) -> None:
        super().__init__(message, **kw)
        self.violations = violations or []


class _RetryableError(NotigateError):
    def __init__(self, message: str, *, retry_after_s: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after_s = retry_after_s


class UnavailableError(_RetryableError):
    """The server could not carry out the request now (nothing was stored); try again later."""


class ResourceExhaustedError(_RetryableError):
    """A server-side limit was hit (queue full, message too large)."""


class DeadlineExceededError(NotigateError, TimeoutError):
    """A deadline passed: a call's ``timeout_s`` (the request may still have been carried
    out) or the ``timeout`` of a wait such as ``wait_job``."""


class UnauthenticatedError(NotigateError):
    """The bearer token was missing or not accepted."""


class PermissionDeniedError(NotigateError):
    """The bearer token was accepted but may not do this: for reason ``BOT_NOT_ALLOWED``,
    use ``bot`` (the token is bound to other bots); for ``READ_ONLY_TOKEN``, the call is a
    change and the token may only read."""

    def __init__(self, message: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.bot = self.metadata.get("bot", "")


def _rich_status(metadata: Iterable[tuple[str, str | bytes]] | None) -> Any | None:
    for key, value in metadata or ():
        if key == DETAILS_METADATA_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except DecodeError:
                return None  # a proxy's garbage must not hide the status code itself
    return None


def from_rpc_error(exc: grpc.RpcError) -> NotigateError:
    """Map a ``grpc.RpcError`` (sync) or ``grpc.aio.AioRpcError`` to a :class:`NotigateError`.

    Works for both because each exposes ``code()``, ``details()`` and ``trailing_metadata()``
    synchronously once the call has failed.
    """
    code: grpc.StatusCode | None = exc.code() if hasattr(exc, "code") else None
    message: str = (exc.details() if hasattr(exc, "details") else None) or str(exc)
    metadata = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    status = _rich_status(metadata)
    # Details that disagree with the transport code (a proxy rewrote it) describe another error.
    if status is not None and code is not None and status.code != code.value[0]:
        status = None

    kw: dict[str, Any] = {"code": code}
    extra: dict[str, Any] = {}
    bad_fields: list[tuple[str, str]] = []
    preconditions: list[tuple[str, str, str]] = []
    for any_detail in status.details if status is not None else ():
        if any_detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            any_detail.Unpack(info)
            kw["reason"] = info.reason
            kw["metadata"] = dict(info.metadata)
        elif any_detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            any_detail.Unpack(bad)
            bad_fields += [(v.field, v.description) for v in bad.field_violations]
        elif any_detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            failure = error_details_pb2.PreconditionFailure()
            any_detail.Unpack(failure)
            preconditions += [(v.type, v.subject, v.description) for v in failure.violations]
        elif any_detail.Is(error_details_pb2.ResourceInfo.DESCRIPTOR):
            res = error_details_pb2.ResourceInfo()
            any_detail.Unpack(res)
            extra["resource_type"] = res.resource_type
            extra["resource_name"] = res.resource_name
        elif any_detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            any_detail.Unpack(retry)
            extra["retry_after_s"] = retry.retry_delay.ToNanoseconds() / 1e9

    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgumentError(message, violations=bad_fields, **kw)
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFoundError(
            message,
            resource_type=extra.get("resource_type", ""),
            resource_name=extra.get("resource_name", ""),
            **kw,
        )
    if code == grpc.StatusCode.ALREADY_EXISTS:
        meta: dict[str, str] = kw.get("metadata", {})
        index = meta.get("index", "")
        return AlreadyExistsError(
            message,
            job_id=meta.get("job_id") or extra.get("resource_name", ""),
            idempotency_key=meta.get("idempotency_key", ""),
            index=int(index) if index.isdigit() else None,
            **kw,
        )
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return FailedPreconditionError(message, violations=preconditions, **kw)
    if code == grpc.StatusCode.UNAVAILABLE:
        return UnavailableError(message, retry_after_s=extra.get("retry_after_s"), **kw)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return ResourceExhaustedError(message, retry_after_s=extra.get("retry_after_s"), **kw)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceededError(message, **kw)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return UnauthenticatedError(message, **kw)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return PermissionDeniedError(message, **kw)
    return NotigateError(message, **kw)

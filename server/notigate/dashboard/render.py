"""The dashboard's JSON: protobuf messages as the gateway's API returns them, and errors.

Every body is the RPC's response rendered by protobuf's JSON mapping with the proto's own
field names, so the page reads the same fields a grpcurl user sees (int64 as strings,
enums by name, Timestamps in RFC 3339).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message

from notigate_client.errors import InvalidArgumentError, from_rpc_error

__all__ = ["error", "json", "message_json", "rpc_error"]

# gRPC status -> the HTTP status a browser's fetch sees (the mapping of google.rpc.Code).
_HTTP = {
    grpc.StatusCode.INVALID_ARGUMENT: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.FAILED_PRECONDITION: HTTPStatus.CONFLICT,
    grpc.StatusCode.OUT_OF_RANGE: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.UNAUTHENTICATED: HTTPStatus.UNAUTHORIZED,
    grpc.StatusCode.PERMISSION_DENIED: HTTPStatus.FORBIDDEN,
    grpc.StatusCode.NOT_FOUND: HTTPStatus.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: HTTPStatus.CONFLICT,
    grpc.StatusCode.ABORTED: HTTPStatus.CONFLICT,
    grpc.StatusCode.RESOURCE_EXHAUSTED: HTTPStatus.TOO_MANY_REQUESTS,
    grpc.StatusCode.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: HTTPStatus.GATEWAY_TIMEOUT,
    grpc.StatusCode.UNIMPLEMENTED: HTTPStatus.NOT_IMPLEMENTED,
}


def message_json(message: Message) -> dict[str, Any]:
    """``message`` in protobuf's JSON mapping, every field present."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def json(body: Any, status: int = HTTPStatus.OK) -> web.Response:
    """A JSON response that no cache keeps (it is one user's view of live data)."""
    return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})


def error(
    status: int,
    code: str,
    message: str,
    *,
    reason: str = "",
    violations: list[tuple[str, str]] | None = None,
) -> web.Response:
    """The dashboard's error body: ``{"error": {code, http, message, reason, violations}}``."""
    body: dict[str, Any] = {"code": code, "http": status, "message": message}
    if reason:
        body["reason"] = reason
    if violations:
        body["violations"] = [{"field": f, "description": d} for f, d in violations]
    return json({"error": body}, status)


def rpc_error(exc: grpc.RpcError) -> web.Response:
    """A failed gRPC call as the dashboard's error body, with the google.rpc details."""
    mapped = from_rpc_error(exc)
    code = mapped.code or grpc.StatusCode.UNKNOWN
    status = _HTTP.get(code, HTTPStatus.INTERNAL_SERVER_ERROR)
    violations = mapped.violations if isinstance(mapped, InvalidArgumentError) else None
    return error(status, code.name, mapped.message, reason=mapped.reason, violations=violations)

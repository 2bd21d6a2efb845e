"""Registering NotificationService so undecodable requests are INVALID_ARGUMENT.

The generated ``add_NotificationServiceServicer_to_server`` lets grpcio answer
a request whose bytes are not a valid protobuf with INTERNAL ("Exception
deserializing request"), which tells a client the server is broken rather
than its input. Here each method decodes its request itself and answers
INVALID_ARGUMENT with a BadRequest naming the whole request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message

from notigate import rpc_status
from notigate.service import NotificationService
from notigate.validation import FieldViolation
from notigate_client import pb

SERVICE = pb.DESCRIPTOR.services_by_name["NotificationService"]

Behavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Message]]


class _Undecodable:
    """Stands in for a request whose bytes did not parse."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error


def _decoder(message_type: type[Message]) -> Callable[[bytes], Message | _Undecodable]:
    def decode(data: bytes) -> Message | _Undecodable:
        try:
            return message_type.FromString(data)
        except DecodeError as exc:
            return _Undecodable(str(exc))

    return decode


def _guarded(behavior: Behavior) -> Behavior:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Message:
        if isinstance(request, _Undecodable):
            violation = FieldViolation(
                field="",
                description=f"the request is not a valid protobuf message: {request.error}",
            )
            await rpc_status.abort(context, rpc_status.invalid_argument([violation]))
        return await behavior(request, context)

    return handle


def register(service: NotificationService, server: grpc.aio.Server) -> None:
    """Add ``service`` to ``server`` with request decoding that never yields INTERNAL."""
    handlers = {}
    for method in SERVICE.methods:
        request_type = pb.DESCRIPTOR.message_types_by_name[method.input_type.name]
        request_class: type[Message] = getattr(pb, request_type.name)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _guarded(getattr(service, method.name)),
            request_deserializer=_decoder(request_class),
            response_serializer=lambda message: message.SerializeToString(),
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),)
    )

"""Registering NotificationService so undecodable requests are INVALID_ARGUMENT.

The generated ``add_NotificationServiceServicer_to_server`` lets grpcio answer
a request whose bytes are not a valid protobuf with UNKNOWN or INTERNAL, which tells a
client the server is broken rather than its input. Here each method decodes its request
through :mod:`notigate.decoding`, so the service answers INVALID_ARGUMENT with a BadRequest
naming the whole request, as the health and reflection services do.
"""

from __future__ import annotations

import grpc
from google.protobuf.message import Message

from notigate.decoding import guarded, safe_deserializer
from notigate.service import NotificationService
from notigate_client import pb

SERVICE = pb.DESCRIPTOR.services_by_name["NotificationService"]


def register(service: NotificationService, server: grpc.aio.Server) -> None:
    """Add ``service`` to ``server`` with request decoding that never yields UNKNOWN."""
    handlers = {}
    for method in SERVICE.methods:
        request_type = pb.DESCRIPTOR.message_types_by_name[method.input_type.name]
        request_class: type[Message] = getattr(pb, request_type.name)
        # UploadFile streams its requests, WatchEvents its responses; the rest are unary.
        make = (
            grpc.stream_unary_rpc_method_handler
            if method.client_streaming
            else grpc.unary_stream_rpc_method_handler
            if method.server_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[method.name] = make(
            guarded(getattr(service, method.name), streaming_request=method.client_streaming),
            request_deserializer=safe_deserializer(request_class.FromString),
            response_serializer=lambda message: message.SerializeToString(),
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),)
    )

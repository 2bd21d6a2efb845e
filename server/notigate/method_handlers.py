"""A grpc method handler rebuilt around a wrapped behaviour, whatever its call type.

The request-decoding guard and the metrics interceptor both wrap what a handler does
without changing how it is called; grpc keeps each call type in its own field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

__all__ = ["Behavior", "rewrap"]

Behavior = Callable[..., Any]

# Field, constructor, and whether the behaviour receives a stream of requests.
_CALL_TYPES: tuple[tuple[str, Callable[..., grpc.RpcMethodHandler], bool], ...] = (
    ("unary_unary", grpc.unary_unary_rpc_method_handler, False),
    ("unary_stream", grpc.unary_stream_rpc_method_handler, False),
    ("stream_unary", grpc.stream_unary_rpc_method_handler, True),
    ("stream_stream", grpc.stream_stream_rpc_method_handler, True),
)


def rewrap(
    handler: grpc.RpcMethodHandler,
    wrap: Callable[[Behavior, bool], Behavior],
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler:
    """``handler`` whose behaviour is ``wrap(behaviour, streaming_request)``, with
    ``request_deserializer`` instead of its own when given."""
    for field, build, streaming_request in _CALL_TYPES:
        behavior = getattr(handler, field)
        if behavior is not None:
            return build(
                wrap(behavior, streaming_request),
                request_deserializer or handler.request_deserializer,
                handler.response_serializer,
            )
    return handler

"""Requests whose bytes are not a valid protobuf message get INVALID_ARGUMENT, on every service.

grpcio answers a request its deserializer cannot parse with UNKNOWN ("Unexpected <class
'DecodeError'>", an internal class name) and logs an ERROR traceback per call, so any
stranger could fill the log and make the server look broken. :class:`DecodingInterceptor`
(innermost, next to the handlers) wraps the deserializer of whatever handler a call
resolves to, the gateway's own, grpc.health.v1's and reflection's alike: bytes that do not
parse become a stand-in that the wrapped behaviour answers with INVALID_ARGUMENT and a
BadRequest naming the whole request, logged at debug only.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import grpc

from notigate import rpc_status
from notigate.validation import FieldViolation

__all__ = ["DecodingInterceptor", "Undecodable", "guarded", "safe_deserializer"]

log = logging.getLogger(__name__)

Deserializer = Callable[[bytes], Any]
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]


class Undecodable:
    """Stands in for a request whose bytes did not parse."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error


def safe_deserializer(deserialize: Deserializer | None) -> Deserializer | None:
    """``deserialize`` returning :class:`Undecodable` instead of raising (None stays None)."""
    if deserialize is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:  # whatever the parser raises, the bytes are at fault
            return Undecodable(str(exc) or type(exc).__name__)

    return decode


async def _reject(request: Undecodable, context: grpc.aio.ServicerContext) -> NoReturn:
    log.debug("undecodable request from %s: %s", context.peer(), request.error)
    violation = FieldViolation(
        field="", description=f"the request is not a valid protobuf message: {request.error}"
    )
    await rpc_status.abort(context, rpc_status.invalid_argument([violation]))


async def _checked(
    requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, Undecodable):
            await _reject(request, context)
        yield request


def guarded(behavior: Callable[..., Any], *, streaming_request: bool) -> Callable[..., Any]:
    """``behavior`` answering an :class:`Undecodable` request with INVALID_ARGUMENT.

    Keeps its shape (coroutine or async generator), which grpc.aio tells apart.
    """
    if inspect.isasyncgenfunction(behavior):

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            if streaming_request:
                request = _checked(request, context)
            elif isinstance(request, Undecodable):
                await _reject(request, context)
            async for response in behavior(request, context):
                yield response

        return stream

    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if streaming_request:
            request = _checked(request, context)
        elif isinstance(request, Undecodable):
            await _reject(request, context)
        return await behavior(request, context)

    return call


def _wrap(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    deserializer = safe_deserializer(handler.request_deserializer)
    serializer = handler.response_serializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            guarded(handler.unary_unary, streaming_request=False), deserializer, serializer
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            guarded(handler.unary_stream, streaming_request=False), deserializer, serializer
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            guarded(handler.stream_unary, streaming_request=True), deserializer, serializer
        )
    return grpc.stream_stream_rpc_method_handler(
        guarded(handler.stream_stream, streaming_request=True), deserializer, serializer
    )


class DecodingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc,unused-ignore]
    """Makes every handler answer undecodable requests with INVALID_ARGUMENT; put it last."""

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler  # unknown method, or one that parses nothing
        return _wrap(handler)

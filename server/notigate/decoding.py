"""Requests whose bytes are not a valid protobuf message get INVALID_ARGUMENT, on every service.

grpcio answers a request its deserializer cannot parse with UNKNOWN ("Unexpected <class
'DecodeError'>", an internal class name) and logs an ERROR traceback per call, so any
stranger could fill the log and make the server look broken. Every handler the gateway
serves, its own, grpc.health.v1's and reflection's alike, is registered with a deserializer
that cannot raise: bytes that do not parse become a stand-in that the guarded behaviour
answers with INVALID_ARGUMENT and a BadRequest naming the whole request, logged at debug.

The handlers are wrapped once, when they are registered (:class:`GuardedRegistrar` stands
in for the server while a library's ``add_*_to_server`` runs), not per call: a server
interceptor doing the same cost about 15 % of Send's throughput.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, NoReturn

import grpc

from notigate import rpc_status
from notigate.method_handlers import rewrap
from notigate.validation import FieldViolation

__all__ = ["GuardedRegistrar", "Undecodable", "guard_handler", "guarded", "safe_deserializer"]

log = logging.getLogger(__name__)

Deserializer = Callable[[bytes], Any]


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


def guard_handler(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """``handler`` answering undecodable requests with INVALID_ARGUMENT."""
    if handler.request_deserializer is None:
        return handler  # it parses nothing
    return rewrap(
        handler,
        lambda behavior, streaming: guarded(behavior, streaming_request=streaming),
        safe_deserializer(handler.request_deserializer),
    )


class _GuardedGenericHandler(grpc.GenericRpcHandler):  # type: ignore[misc,unused-ignore]
    """A library's generic handler whose method handlers come out guarded, each wrapped
    the first time it is looked up."""

    def __init__(self, inner: grpc.GenericRpcHandler) -> None:
        self._inner = inner
        self._guarded: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        known = self._guarded.get(method)
        if known is None or known[0] is not handler:
            known = (handler, guard_handler(handler))
            self._guarded[method] = known
        return known[1]


class GuardedRegistrar:
    """Stands in for ``server`` while generated ``add_*_to_server`` code registers a
    service: what it registers is guarded (see the module's docstring)."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, generic_handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(
            tuple(_GuardedGenericHandler(handler) for handler in generic_handlers)
        )

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        self._server.add_registered_method_handlers(
            service_name, {name: guard_handler(h) for name, h in method_handlers.items()}
        )

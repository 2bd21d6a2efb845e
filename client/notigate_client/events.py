"""Following the gateway's event stream (WatchEvents) across reconnects.

:meth:`NotificationClient.watch_events` returns an :class:`EventIterator` (the async
client an :class:`AsyncEventIterator`) of :class:`WatchedEvent`. Each new connection asks
for the events after the last one yielded (or, before the first, after the position the
gateway reported in the ``x-notigate-cursor`` initial metadata), so a restart of the
gateway, a dropped connection or a GOAWAY costs the caller neither an event nor a
duplicate. Events the stream trimmed meanwhile cannot be replayed: the first event after
them comes with ``gap=True``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import grpc

from notigate_client._proto.notigate.v1 import notification_pb2 as pb
from notigate_client.errors import (
    DeadlineExceededError,
    NotigateError,
    UnavailableError,
    from_rpc_error,
)

__all__ = [
    "CURSOR_METADATA_KEY",
    "FINAL_STATES",
    "AsyncEventIterator",
    "EventIterator",
    "Resume",
    "WatchedEvent",
]

CURSOR_METADATA_KEY = "x-notigate-cursor"
# A job in one of these states changes no more (unless retried by a caller).
FINAL_STATES = frozenset({pb.JOB_STATE_COMPLETED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED})

# Reconnect backoff: capped exponential with full jitter, as RetryPolicy, but for a watch
# that should ride out a gateway restart (seconds, not the tenths a call retries for).
_INITIAL_BACKOFF_S = 0.1
_MAX_BACKOFF_S = 5.0
DEFAULT_RECONNECT_FOR_S = 60.0


@dataclass(frozen=True, slots=True)
class WatchedEvent:
    """One event of the stream.

    ``gap`` is True when events between the previous position and this one were trimmed
    from the gateway's stream before they could be read (NOTIGATE_EVENTS_MAX or
    NOTIGATE_EVENTS_MAX_AGE): reconcile with ``list_jobs``/``get_job``.
    """

    event: pb.Event
    gap: bool = False

    @property
    def cursor(self) -> str:
        """Where to resume after this event (``watch_events(start_cursor=...)``)."""
        return self.event.cursor

    @property
    def job_id(self) -> str:
        return self.event.job_id

    @property
    def state(self) -> pb.JobState.ValueType:
        return self.event.state


class Resume:
    """Where a watch stands and when it may reconnect; shared by both iterators (the
    clients make them: ``watch_events``).

    ``deadline`` (``time.monotonic()``) bounds every call and wait of the watch; it may be
    moved between iterators that share this position (``wait_job`` does).
    """

    def __init__(
        self,
        request: pb.WatchEventsRequest,
        *,
        reconnect_for_s: float | None,
        deadline: float | None = None,
    ) -> None:
        self._request = request
        self.cursor = request.start_cursor
        self.deadline = deadline
        self._reconnect_for_s = reconnect_for_s
        self._failing_since: float | None = None
        self._connected_at: float | None = None
        self._backoff_s = _INITIAL_BACKOFF_S

    def request(self) -> pb.WatchEventsRequest:
        req = pb.WatchEventsRequest()
        req.CopyFrom(self._request)
        req.start_cursor = self.cursor
        return req

    def timeout_s(self) -> float | None:
        """The gRPC deadline of the next call: what is left of the caller's."""
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.deadline_error()
        return left

    def deadline_error(self) -> DeadlineExceededError:
        return DeadlineExceededError(
            "deadline exceeded while watching events", code=grpc.StatusCode.DEADLINE_EXCEEDED
        )

    def connected(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> None:
        """The call's initial metadata arrived (empty when the call failed first): the
        stream's start is the position to resume from until an event is yielded."""
        for key, value in metadata or ():
            if key == CURSOR_METADATA_KEY:
                self._connected_at = time.monotonic()
                if not self.cursor:
                    self.cursor = value.decode() if isinstance(value, bytes) else value

    def advance(self, response: pb.WatchEventsResponse) -> WatchedEvent:
        self.cursor = response.event.cursor
        self._recovered()  # an event is progress
        return WatchedEvent(event=response.event, gap=response.gap)

    def _recovered(self) -> None:
        self._failing_since = None
        self._backoff_s = _INITIAL_BACKOFF_S

    def delay_after(self, exc: grpc.RpcError | None) -> float:
        """Seconds to wait before reconnecting after ``exc`` (None: the server ended the
        stream), or raise what the caller should see instead."""
        err: NotigateError | None = None if exc is None else from_rpc_error(exc)
        if err is not None and err.code == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise self.deadline_error() from exc
        if err is not None and not isinstance(err, UnavailableError):
            raise err from exc
        now = time.monotonic()
        # A connection that stood for a while (quiet, no events) ends a new outage; one
        # that fails at once (Redis away after the headers) is part of the same one.
        if self._connected_at is not None and now - self._connected_at >= _MAX_BACKOFF_S:
            self._recovered()
        self._connected_at = None
        if self._failing_since is None:
            self._failing_since = now
        elif (
            self._reconnect_for_s is not None and now - self._failing_since > self._reconnect_for_s
        ):
            ended = UnavailableError(
                "the gateway keeps ending the event stream", code=grpc.StatusCode.UNAVAILABLE
            )
            raise (err or ended) from exc
        delay = random.uniform(0, self._backoff_s)
        if isinstance(err, UnavailableError) and err.retry_after_s:
            delay = max(delay, min(err.retry_after_s, _MAX_BACKOFF_S))
        self._backoff_s = min(self._backoff_s * 2, _MAX_BACKOFF_S)
        if self.deadline is not None and now + delay >= self.deadline:
            raise self.deadline_error() from exc
        return delay


def _no_cursor() -> NotigateError:
    # Resuming needs a position; a server that gives none is not a notigate gateway.
    return NotigateError(f"the server sent no {CURSOR_METADATA_KEY} initial metadata")


class _Watch:
    """What both iterators hold: how to open the stream, where to resume, the open call."""

    def __init__(
        self, open_call: Callable[[pb.WatchEventsRequest, float | None], Any], resume: Resume
    ) -> None:
        self._open = open_call
        self._resume = resume
        self._call: Any = None
        self._closed = False

    @property
    def cursor(self) -> str:
        return self._resume.cursor

    def _drop(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            call.cancel()


class EventIterator(_Watch):
    """A blocking iterator of :class:`WatchedEvent` that reconnects by itself.

    ``cursor`` is the position to resume from: the last event yielded, or where the
    stream started. Close it (or use it as a context manager) to end the stream early.
    """

    def connect(self) -> str:
        """Open the stream if it is not open, and return the position it starts after:
        state read after this returns misses no later event."""
        while self._call is None and not self._closed:
            self._open_one()
        if self._closed:
            raise ValueError("the event iterator is closed")
        return self._resume.cursor

    def _open_one(self) -> None:
        call = self._open(self._resume.request(), self._resume.timeout_s())
        self._resume.connected(call.initial_metadata())
        if self._resume.cursor:
            self._call = call
            if self._closed:  # by another thread meanwhile
                self._drop()
            return
        # No position: the call ended before the gateway answered; reading says why.
        try:
            next(call)
        except StopIteration:
            self._reconnect(None)
        except grpc.RpcError as exc:
            self._reconnect(exc)
        else:
            call.cancel()
            raise _no_cursor()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> WatchedEvent:
        while not self._closed:
            if self._call is None:
                self._open_one()
                continue
            try:
                response = next(self._call)
            except StopIteration:
                self._reconnect(None)
                continue
            except grpc.RpcError as exc:
                self._reconnect(exc)
                continue
            return self._resume.advance(response)
        raise StopIteration

    def _reconnect(self, exc: grpc.RpcError | None) -> None:
        self._drop()
        if self._closed:
            return  # close() cancelled the call: the end, not an error
        try:
            delay = self._resume.delay_after(exc)
        except BaseException:
            self._closed = True
            raise
        time.sleep(delay)

    def close(self) -> None:
        """End the stream; the iterator yields nothing more (safe from another thread:
        an iteration blocked on the stream ends)."""
        self._closed = True
        self._drop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncEventIterator(_Watch):
    """The asyncio counterpart of :class:`EventIterator`."""

    async def connect(self) -> str:
        """Open the stream if it is not open, and return the position it starts after."""
        while self._call is None and not self._closed:
            await self._open_one()
        if self._closed:
            raise ValueError("the event iterator is closed")
        return self._resume.cursor

    async def _open_one(self) -> None:
        call = self._open(self._resume.request(), self._resume.timeout_s())
        self._resume.connected(await call.initial_metadata())
        if self._resume.cursor:
            self._call = call
            return
        try:
            response = await call.read()
        except grpc.RpcError as exc:
            await self._reconnect(exc)
            return
        call.cancel()
        if response is not grpc.aio.EOF:
            raise _no_cursor()
        await self._reconnect(None)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> WatchedEvent:
        while not self._closed:
            if self._call is None:
                await self._open_one()
                continue
            try:
                response = await self._call.read()
            except grpc.RpcError as exc:  # grpc.aio.AioRpcError subclasses it
                await self._reconnect(exc)
                continue
            if response is grpc.aio.EOF:
                await self._reconnect(None)
                continue
            return self._resume.advance(response)
        raise StopAsyncIteration

    async def _reconnect(self, exc: grpc.RpcError | None) -> None:
        self._drop()
        if self._closed:
            return
        try:
            delay = self._resume.delay_after(exc)
        except BaseException:
            self._closed = True
            raise
        await asyncio.sleep(delay)

    async def aclose(self) -> None:
        """End the stream; the iterator yields nothing more."""
        self._closed = True
        self._drop()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

"""Blocking and asyncio clients for the notigate NotificationService.

>>> with NotificationClient("localhost:50051", token="s3cret") as client:
...     job_id = client.send("-1001234567890", "hello").job_id
...     print(client.get_job(job_id).state)

Both clients send the bearer token as ``authorization`` metadata, apply ``timeout_s`` to every
attempt, retry UNAVAILABLE up to ``retries`` times with exponential backoff, and raise the
exceptions of :mod:`notigate_client.errors`. Send and SendBatch get an idempotency key
(uuid4) when the caller gives none, so a retry never delivers a message twice.

Job states are enum values (``pb.JOB_STATE_FAILED``); :func:`state_name` spells them as the
CLI does (``"failed"``), and every ``state`` argument takes either spelling.

Files go as ``media=`` (built with :mod:`notigate_client.media`: ``photo(url=...)``,
``document(upload_id=client.upload_file(path))``...) or as an album, ``media_group=``;
:meth:`~NotificationClient.edit` and :meth:`~NotificationClient.delete` change a message
later, whether it is still queued or already delivered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, Unpack, overload

import grpc
from google.protobuf.message import Message

from notigate_client._common import (
    CHANNEL_OPTIONS,
    JobStateLike,
    Metadata,
    ParseModeLike,
    RetryPolicy,
    SendOptions,
    batch_request,
    bot_of_job,
    build_edit_request,
    build_send_request,
    call_metadata,
    channel_credentials,
    list_request,
    with_bot,
    with_idempotency_key,
)
from notigate_client._proto.notigate.v1 import notification_pb2 as pb
from notigate_client._proto.notigate.v1 import notification_pb2_grpc as pb_grpc
from notigate_client.errors import DeadlineExceededError, from_rpc_error
from notigate_client.events import (
    DEFAULT_RECONNECT_FOR_S,
    FINAL_STATES,
    AsyncEventIterator,
    EventIterator,
    Resume,
)
from notigate_client.media import MediaGroupLike
from notigate_client.uploads import DEFAULT_CHUNK_SIZE, UploadSource, plan_upload

__all__ = [
    "AsyncNotificationClient",
    "NotificationClient",
    "bot_of_job",
    "job_state",
    "state_name",
    "watch_request",
]

_R = TypeVar("_R", bound=Message)

_STATE_PREFIX = "JOB_STATE_"


def state_name(state: pb.Job | JobStateLike) -> str:
    """A job's state (or a JobState value) as a name: ``"failed"``, ``"waiting"``…

    ``"unspecified"`` for 0 and ``"unknown(N)"`` for a value newer than this client.
    """
    value = state.state if isinstance(state, pb.Job) else state
    if value not in pb.JobState.values():
        return f"unknown({int(value)})"
    return pb.JobState.Name(value).removeprefix(_STATE_PREFIX).lower()


def job_state(state: JobStateLike | str) -> pb.JobState.ValueType:
    """The JobState value for an enum value or a name (``"failed"``, ``"JOB_STATE_FAILED"``,
    any case)."""
    if not isinstance(state, str):
        return state
    name = state.strip().upper()
    if not name.startswith(_STATE_PREFIX):
        name = _STATE_PREFIX + name
    try:
        value = pb.JobState.Value(name)
    except ValueError:
        value = pb.JOB_STATE_UNSPECIFIED
    if value == pb.JOB_STATE_UNSPECIFIED:
        known = ", ".join(state_name(v) for v in pb.JobState.values() if v)
        raise ValueError(f"unknown job state {state!r} (one of {known})")
    return value


def _optional_state(state: JobStateLike | str | None) -> pb.JobState.ValueType | None:
    return None if state is None else job_state(state)


def _with_send_at(req: pb.SendRequest, send_at: datetime | None) -> pb.SendRequest:
    if send_at is not None:
        # A naive datetime would silently mean UTC to protobuf; the caller surely meant
        # some zone, so make them say which.
        if send_at.tzinfo is None or send_at.utcoffset() is None:
            raise ValueError("send_at must be timezone-aware (e.g. datetime.now(UTC))")
        req.send_at.FromDatetime(send_at)
    return req


def _job_filter(
    state: JobStateLike | str | None, chat_id: str | int | None, bot: str
) -> pb.JobFilter:
    return pb.JobFilter(
        state=_optional_state(state) or pb.JOB_STATE_UNSPECIFIED,
        chat_id="" if chat_id is None else str(chat_id),
        bot=bot,
    )


def watch_request(
    *,
    start_cursor: str = "",
    job_ids: str | Iterable[str] = (),
    states: Iterable[JobStateLike | str] = (),
    chat_id: str | int | None = None,
    bot: str = "",
) -> pb.WatchEventsRequest:
    """A WatchEventsRequest; states in any form :func:`job_state` takes, one job id or many.

    ``bot`` picks the bot's event stream; "" the stream of the bot ``job_ids`` name, or
    the default bot's."""
    return pb.WatchEventsRequest(
        start_cursor=start_cursor,
        job_ids=[job_ids] if isinstance(job_ids, str) else list(job_ids),
        states=[job_state(s) for s in states],
        chat_id="" if chat_id is None else str(chat_id),
        bot=bot,
    )


def _final_request(job_id: str) -> pb.WatchEventsRequest:
    return watch_request(job_ids=job_id, states=sorted(FINAL_STATES))


def _deadline(timeout: float | None) -> float | None:
    if timeout is not None and timeout < 0:
        raise ValueError("timeout must be >= 0")
    return None if timeout is None else time.monotonic() + timeout


# wait_job reads the job at least this often, though no event says it changed.
_RECHECK_S = 30.0


def _recheck_by(deadline: float | None) -> float:
    """The end of one round of wait_job: its next read, or the caller's deadline."""
    recheck = time.monotonic() + _RECHECK_S
    return recheck if deadline is None else min(deadline, recheck)


def _job_timeout_error(job_id: str, timeout: float | None) -> DeadlineExceededError:
    return DeadlineExceededError(
        f"job {job_id} was not final within {timeout:g} s",
        code=grpc.StatusCode.DEADLINE_EXCEEDED,
    )


class _ClientBase:
    """Settings both clients share."""

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        tls: bool | grpc.ChannelCredentials = False,
        root_certificates: bytes | None = None,
        timeout_s: float = 10.0,
        retries: int = 3,
        bot: str = "",
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.target = target
        self.bot = bot
        self._credentials = channel_credentials(tls, root_certificates)
        self._metadata: Metadata = call_metadata(token)
        self._timeout_s = timeout_s
        self._retry = RetryPolicy(retries=retries)
        self._channel = self._open_channel(target, self._credentials)
        self._stub = pb_grpc.NotificationServiceStub(self._channel)

    def _open_channel(self, target: str, credentials: grpc.ChannelCredentials | None) -> Any:
        raise NotImplementedError

    def _bot_of(self, bot: str | None) -> str:
        """The bot a call names: its own ``bot`` when given ("" included), else the client's."""
        return self.bot if bot is None else bot

    def _watch_request(
        self,
        start_cursor: str,
        job_ids: str | Iterable[str],
        states: Iterable[JobStateLike | str],
        chat_id: str | int | None,
        bot: str | None,
    ) -> pb.WatchEventsRequest:
        ids = [job_ids] if isinstance(job_ids, str) else list(job_ids)
        # Job ids name their bot: the client's default would only contradict them.
        picked = bot if bot is not None else "" if ids else self.bot
        return watch_request(
            start_cursor=start_cursor, job_ids=ids, states=states, chat_id=chat_id, bot=picked
        )

    def _timeout(self, deadline: float | None) -> float:
        """A call's deadline: the client's timeout, or less when a wait ends sooner."""
        if deadline is None:
            return self._timeout_s
        left = deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceededError("deadline exceeded", code=grpc.StatusCode.DEADLINE_EXCEEDED)
        return min(self._timeout_s, left)

    def _open_watch(self, req: pb.WatchEventsRequest, timeout: float | None) -> Any:
        # No deadline unless a wait sets one: a watch lasts as long as the caller reads.
        return self._stub.WatchEvents(req, timeout=timeout, metadata=self._metadata)

    def __repr__(self) -> str:
        # The token stays out of reprs, and so out of logs and tracebacks.
        bot = f", bot={self.bot!r}" if self.bot else ""
        return f"{type(self).__name__}({self.target!r}{bot})"


def _checked(response: Any, response_type: type[_R]) -> _R:
    if not isinstance(response, response_type):
        raise TypeError(f"expected {response_type.__name__}, got {type(response).__name__}")
    return response


class NotificationClient(_ClientBase):
    """Blocking client. Thread-safe: one instance can serve many threads.

    Args:
        target: ``host:port`` of the server.
        token: bearer token sent with every call.
        tls: True for TLS with the system roots, or ready-made ``grpc.ChannelCredentials``.
        root_certificates: PEM roots to trust instead of the system's (implies TLS).
        timeout_s: deadline of each attempt.
        retries: retries after an UNAVAILABLE answer (0 disables retrying).
        bot: the bot of every call that picks one (send, send_batch, upload_file,
            list_jobs, stats, retry_jobs, cancel_jobs, watch_events, the suppressed
            chats) unless the call names its own ``bot=``; "" is the gateway's default
            bot (the one named "default", or its only bot). Calls about one job need no
            bot: its id names it (``support:123``; the default bot's ids are decimal).
    """

    def _open_channel(self, target: str, credentials: grpc.ChannelCredentials | None) -> Any:
        if credentials is None:
            return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        return grpc.secure_channel(target, credentials, options=CHANNEL_OPTIONS)

    def _call(
        self,
        rpc: Callable[..., Any],
        request: Message,
        response_type: type[_R],
        deadline: float | None = None,
    ) -> _R:
        return self._attempts(
            lambda: rpc(request, timeout=self._timeout(deadline), metadata=self._metadata),
            response_type,
        )

    def _attempts(
        self, invoke: Callable[[], Any], response_type: type[_R], *, retry: bool = True
    ) -> _R:
        delays = self._retry.delays() if retry else iter(())
        while True:
            try:
                response = invoke()
            except grpc.RpcError as exc:
                err = from_rpc_error(exc)
                bound = next(delays, None)
                wait = None if bound is None else self._retry.wait_s(bound, err)
                if wait is None:
                    raise err from exc
                time.sleep(wait)
                continue
            return _checked(response, response_type)

    @overload
    def send(
        self,
        chat_id: str | int,
        text: str = "",
        *,
        wait: Literal[False] = False,
        **options: Unpack[SendOptions],
    ) -> pb.SendResponse: ...

    @overload
    def send(
        self,
        chat_id: str | int,
        text: str = "",
        *,
        wait: Literal[True],
        wait_timeout: float | None = None,
        **options: Unpack[SendOptions],
    ) -> pb.Job: ...

    @overload
    def send(
        self,
        chat_id: str | int,
        text: str = "",
        *,
        wait: bool,
        wait_timeout: float | None = None,
        **options: Unpack[SendOptions],
    ) -> pb.SendResponse | pb.Job: ...

    def send(
        self,
        chat_id: str | int,
        text: str = "",
        *,
        parse_mode: ParseModeLike | None = None,
        priority: int = 0,
        delay: float | timedelta | None = None,
        send_at: datetime | None = None,
        idempotency_key: str | None = None,
        max_attempts: int = 0,
        disable_notification: bool = False,
        protect_content: bool = False,
        message_thread_id: int = 0,
        reply_markup: pb.InlineKeyboardMarkup | None = None,
        link_preview: pb.LinkPreviewOptions | None = None,
        allow_paid_broadcast: bool = False,
        media: pb.Media | None = None,
        media_group: MediaGroupLike | None = None,
        bot: str | None = None,
        wait: bool = False,
        wait_timeout: float | None = None,
    ) -> pb.SendResponse | pb.Job:
        """Enqueue one message; returns once the server stored it.

        ``delay`` (seconds) or ``send_at`` (a timezone-aware datetime; a past one means
        now): deliver no earlier than that. ``media`` sends a file with ``text`` as its
        caption (0..1024 characters); ``media_group`` sends an album of 2..10 items, each
        with its own caption (``text`` empty, no ``reply_markup``). ``bot`` picks the bot
        that sends it (default: the client's).

        ``wait=True`` returns the job once it is final (completed, failed or cancelled)
        instead, as :meth:`wait_job` (``wait_timeout`` is its ``timeout``).
        """
        picked = self._bot_of(bot)
        sent = self.send_request(
            _with_send_at(
                build_send_request(
                    chat_id,
                    text,
                    parse_mode=parse_mode,
                    priority=priority,
                    delay=delay,
                    idempotency_key=idempotency_key,
                    max_attempts=max_attempts,
                    disable_notification=disable_notification,
                    protect_content=protect_content,
                    message_thread_id=message_thread_id,
                    reply_markup=reply_markup,
                    link_preview=link_preview,
                    allow_paid_broadcast=allow_paid_broadcast,
                    media=media,
                    media_group=media_group,
                    bot=picked,
                ),
                send_at,
            ),
            # Already the call's pick: "" must stay the gateway's default, not the client's.
            bot=picked,
        )
        return self.wait_job(sent.job_id, timeout=wait_timeout) if wait else sent

    def send_request(self, req: pb.SendRequest, *, bot: str | None = None) -> pb.SendResponse:
        """Enqueue a prepared SendRequest (``req`` itself is not modified); one that names
        no bot goes to ``bot`` (default: the client's)."""
        keyed = with_idempotency_key(with_bot(req, self._bot_of(bot)))
        return self._call(self._stub.Send, keyed, pb.SendResponse)

    def send_batch(
        self,
        requests: Sequence[pb.SendRequest],
        *,
        validate_only: bool = False,
        bot: str | None = None,
    ) -> list[pb.SendResponse]:
        """Enqueue many messages all-or-nothing; results are in request order.

        With ``validate_only`` the server checks the messages, stores nothing and returns no
        results; invalid ones raise InvalidArgumentError as a real call would. Messages that
        name no bot go to ``bot`` (default: the client's); a batch goes to one bot.
        """
        req = batch_request(requests, validate_only, self._bot_of(bot))
        return list(self._call(self._stub.SendBatch, req, pb.SendBatchResponse).results)

    def get_job(self, job_id: str) -> pb.Job:
        """The job with its delivery state."""
        req = pb.GetJobRequest(job_id=job_id)
        return self._call(self._stub.GetJob, req, pb.GetJobResponse).job

    def watch_events(
        self,
        *,
        start_cursor: str = "",
        job_ids: str | Iterable[str] = (),
        states: Iterable[JobStateLike | str] = (),
        chat_id: str | int | None = None,
        reconnect_for_s: float | None = DEFAULT_RECONNECT_FOR_S,
        bot: str | None = None,
    ) -> EventIterator:
        """Iterate over job state changes as they happen (:class:`~notigate_client.WatchedEvent`).

        Without ``start_cursor`` only events after the call; with an event's ``cursor``,
        every event after it (as long as the gateway keeps it: older ones are reported by
        ``gap=True`` on the next). Filters: ``job_ids`` (at most 1,000), ``states``
        (``"completed"`` or ``pb.JOB_STATE_COMPLETED``), ``chat_id``; all given must match.
        Each bot has a stream of its own: ``bot`` picks it (default: the bot ``job_ids``
        name, else the client's), and cursors belong to their stream.

        The iterator reconnects by itself after UNAVAILABLE (a gateway restart, a dropped
        connection) with jittered backoff of at most 5 s, resuming after the last event it
        yielded: nothing is lost or repeated. It raises UnavailableError after
        ``reconnect_for_s`` seconds without a connection (None: never), and other errors
        as any call does. It never ends by itself: break out of it, or ``close()`` it
        (it is a context manager). ``.cursor`` is where it stands.
        """
        req = self._watch_request(start_cursor, job_ids, states, chat_id, bot)
        resume = Resume(req, reconnect_for_s=reconnect_for_s, deadline=None)
        return EventIterator(self._open_watch, resume)

    def wait_job(self, job_id: str, *, timeout: float | None = None) -> pb.Job:
        """The job once it is final (completed, failed or cancelled).

        Watches the job's events before reading it, so no change between the read and
        the watch is missed, and reads it again on each final event (a job retried
        meanwhile is waited for again) and every 30 s (an event trimmed unread, or
        events turned off). ``timeout`` (seconds; None waits as long as it takes) raises
        DeadlineExceededError, a TimeoutError, when it passes first.
        """
        deadline = _deadline(timeout)
        resume = Resume(_final_request(job_id), reconnect_for_s=DEFAULT_RECONNECT_FOR_S)
        while True:
            resume.deadline = _recheck_by(deadline)
            try:
                # Each round resumes after the last event seen: none falls between two.
                with EventIterator(self._open_watch, resume) as events:
                    events.connect()
                    req = pb.GetJobRequest(job_id=job_id)
                    job = self._call(self._stub.GetJob, req, pb.GetJobResponse, deadline).job
                    if job.state in FINAL_STATES:
                        return job
                    next(events)
            except DeadlineExceededError as err:
                if deadline is not None and time.monotonic() >= deadline:
                    raise _job_timeout_error(job_id, timeout) from err

    def cancel_job(self, job_id: str) -> pb.Job:
        """Cancel a job not yet handed to Telegram; returns the cancelled job."""
        req = pb.CancelJobRequest(job_id=job_id)
        return self._call(self._stub.CancelJob, req, pb.CancelJobResponse).job

    def retry_job(self, job_id: str) -> pb.Job:
        """Queue a failed job again with a fresh attempt budget."""
        req = pb.RetryJobRequest(job_id=job_id)
        return self._call(self._stub.RetryJob, req, pb.RetryJobResponse).job

    def upload_file(
        self,
        source: UploadSource,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        size: int | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        timeout_s: float | None = None,
        bot: str | None = None,
    ) -> pb.UploadFileResponse:
        """Store a file on the gateway for sends that name its ``upload_id``.

        ``source`` is a path or a binary file object, read from its position in chunks of
        ``chunk_size`` bytes (at most 1 MiB less 64 bytes of framing), never whole.
        ``filename`` defaults to the file's name and ``content_type`` to a guess from it; a
        file object that cannot tell its size (a pipe) needs ``size``. ``timeout_s`` bounds
        the whole upload (default: the client's timeout), to raise for large files on slow
        links. An UNAVAILABLE answer is retried from the first byte unless the file object
        cannot be rewound. The file is ``bot``'s (default: the client's): only its messages
        can use it (for an edit, the bot of the job: :func:`bot_of_job`).

        Raises:
            ValueError: no filename or size can be found, or ``chunk_size`` is out of range.
            OSError: the path cannot be read.
        """
        plan = plan_upload(
            source,
            filename=filename,
            content_type=content_type,
            size=size,
            chunk_size=chunk_size,
            bot=self._bot_of(bot),
        )
        timeout = self._timeout_s if timeout_s is None else timeout_s
        return self._attempts(
            lambda: self._stub.UploadFile(
                plan.requests(), timeout=timeout, metadata=self._metadata
            ),
            pb.UploadFileResponse,
            retry=plan.restartable,
        )

    def edit(
        self,
        job_id: str,
        *,
        text: str | None = None,
        parse_mode: ParseModeLike | None = None,
        reply_markup: pb.InlineKeyboardMarkup | None = None,
        media: pb.Media | None = None,
        link_preview: pb.LinkPreviewOptions | None = None,
        remove_keyboard: bool = False,
        update_mask: Sequence[str] | None = None,
        validate_only: bool = False,
    ) -> pb.Job:
        """Change the message of send job ``job_id``: only the fields given (``text=""``
        clears a caption; ``remove_keyboard`` drops the inline keyboard), or exactly the
        ``update_mask`` paths.

        A message still queued is rewritten in place (the send job is returned); a sent
        one gets an edit job (kind EDIT, ``target_job_id`` = ``job_id``), delivered like a
        send. ``validate_only`` checks and changes nothing. An album cannot be edited, a
        text message cannot gain media (FailedPreconditionError, InvalidArgumentError).
        """
        req = build_edit_request(
            job_id,
            text=text,
            parse_mode=parse_mode,
            reply_markup=reply_markup,
            media=media,
            link_preview=link_preview,
            remove_keyboard=remove_keyboard,
            update_mask=update_mask,
            validate_only=validate_only,
        )
        return self._call(self._stub.EditMessage, req, pb.EditMessageResponse).job

    def delete(self, job_id: str, *, validate_only: bool = False) -> pb.Job:
        """Delete the message (or album) of send job ``job_id``: cancelled while still
        queued (the send job is returned), else removed from the chat by a delete job
        (kind DELETE), within Telegram's 48 hours. ``validate_only`` only checks."""
        req = pb.DeleteMessageRequest(job_id=job_id, validate_only=validate_only)
        return self._call(self._stub.DeleteMessage, req, pb.DeleteMessageResponse).job

    def retry_jobs(
        self,
        state: JobStateLike | str | None = None,
        chat_id: str | int | None = None,
        *,
        validate_only: bool = False,
        bot: str | None = None,
    ) -> pb.RetryJobsResponse:
        """Queue again every failed job (of ``chat_id``, when given); ``validate_only``
        only counts them. One call acts on at most 10,000 jobs: while ``count`` comes
        back as 10,000, call again for the rest. Only ``bot``'s jobs (default: the
        client's)."""
        filter_ = _job_filter(state, chat_id, self._bot_of(bot))
        req = pb.RetryJobsRequest(filter=filter_, validate_only=validate_only)
        return self._call(self._stub.RetryJobs, req, pb.RetryJobsResponse)

    def cancel_jobs(
        self,
        state: JobStateLike | str | None = None,
        chat_id: str | int | None = None,
        *,
        validate_only: bool = False,
        bot: str | None = None,
    ) -> pb.CancelJobsResponse:
        """Cancel every waiting and delayed job (only ``state``'s, only ``chat_id``'s when
        given); ``validate_only`` only counts them. At most 10,000 per call, as
        :meth:`retry_jobs`."""
        filter_ = _job_filter(state, chat_id, self._bot_of(bot))
        req = pb.CancelJobsRequest(filter=filter_, validate_only=validate_only)
        return self._call(self._stub.CancelJobs, req, pb.CancelJobsResponse)

    def list_jobs(
        self,
        state: JobStateLike | str | None = None,
        page_size: int = 100,
        *,
        bot: str | None = None,
    ) -> Iterator[pb.Job]:
        """Iterate over all jobs in ``state`` (all states when None; ``"failed"`` or
        ``pb.JOB_STATE_FAILED``) of ``bot`` (default: the client's), page by page."""
        state = _optional_state(state)
        picked = self._bot_of(bot)
        token = ""
        while True:
            req = list_request(state, page_size, token, picked)
            page = self._call(self._stub.ListJobs, req, pb.ListJobsResponse)
            yield from page.jobs
            token = page.next_page_token
            if not token:
                return

    def stats(self, *, bot: str | None = None) -> pb.GetStatsResponse:
        """Queue depths and lifetime totals of ``bot`` (default: the client's); for "" the
        sum over the gateway's bots, each bot's own in ``.bots``."""
        req = pb.GetStatsRequest(bot=self._bot_of(bot))
        return self._call(self._stub.GetStats, req, pb.GetStatsResponse)

    def list_suppressed_chats(
        self, page_size: int = 0, page_token: str = "", *, bot: str | None = None
    ) -> pb.ListSuppressedChatsResponse:
        """One page of the chats messages are not sent to (they blocked the bot or were
        not found), newest first; pass ``next_page_token`` back for the next page
        (``page_size`` 1..1000, 0 = 100). Suppression is per bot: ``bot``'s chats
        (default: the client's)."""
        req = pb.ListSuppressedChatsRequest(
            page_size=page_size, page_token=page_token, bot=self._bot_of(bot)
        )
        return self._call(self._stub.ListSuppressedChats, req, pb.ListSuppressedChatsResponse)

    def unsuppress_chat(
        self, chat_id: str | int, *, validate_only: bool = False, bot: str | None = None
    ) -> pb.SuppressedChat:
        """Let messages reach a suppressed chat again; returns the suppression lifted
        (``validate_only``: the one that would be, nothing changed). NotFoundError when
        the chat is not suppressed (for ``bot``, default: the client's)."""
        req = pb.UnsuppressChatRequest(
            chat_id=str(chat_id), validate_only=validate_only, bot=self._bot_of(bot)
        )
        return self._call(self._stub.UnsuppressChat, req, pb.UnsuppressChatResponse).chat

    def search_jobs(
        self,
        *,
        chat_id: str | int = "",
        idempotency_key: str = "",
        text: str = "",
        page_size: int = 100,
        bot: str | None = None,
    ) -> Iterator[pb.Job]:
        """Iterate over ``bot``'s retained jobs (default: the client's) that match every
        criterion given, newest first: a chat (from an index), an idempotency key (one
        job at most) and a text in the message's text or caption, ignoring case (the
        gateway examines a bounded number of jobs per call; this walks every page)."""
        req = pb.SearchJobsRequest(
            chat_id=str(chat_id),
            idempotency_key=idempotency_key,
            text=text,
            page_size=page_size,
            bot=self._bot_of(bot),
        )
        while True:
            page = self._call(self._stub.SearchJobs, req, pb.SearchJobsResponse)
            yield from page.jobs
            if not page.next_page_token:
                return
            req.page_token = page.next_page_token

    def job_events(self, job_id: str) -> list[pb.Event]:
        """The job's state changes, oldest first, as far as the event stream still holds
        them (every page)."""
        events: list[pb.Event] = []
        req = pb.ListJobEventsRequest(job_id=job_id, page_size=1000)
        while True:
            page = self._call(self._stub.ListJobEvents, req, pb.ListJobEventsResponse)
            events.extend(page.events)
            if not page.next_page_token:
                return events
            req.page_token = page.next_page_token

    def throughput(self, *, bot: str | None = None) -> pb.GetThroughputResponse:
        """``bot``'s delivered, rate-limited, failed and accepted messages per 10 s over
        the last hour (default: the client's bot)."""
        req = pb.GetThroughputRequest(bot=self._bot_of(bot))
        return self._call(self._stub.GetThroughput, req, pb.GetThroughputResponse)

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncNotificationClient(_ClientBase):
    """asyncio client on ``grpc.aio``; same arguments and methods as :class:`NotificationClient`.

    Use it from one event loop: grpc.aio channels belong to the loop they were first used in.
    """

    def _open_channel(self, target: str, credentials: grpc.ChannelCredentials | None) -> Any:
        if credentials is None:
            return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        return grpc.aio.secure_channel(target, credentials, options=CHANNEL_OPTIONS)

    async def _call(
        self,
        rpc: Callable[..., Any],
        request: Message,
        response_type: type[_R],
        deadline: float | None = None,
    ) -> _R:
        return await self._attempts(
            lambda: rpc(request, timeout=self._timeout(deadline), metadata=self._metadata),
            response_type,
        )

    async def _attempts(
        self, invoke: Callable[[], Any], response_type: type[_R], *, retry: bool = True
    ) -> _R:
        delays = self._retry.delays() if retry else iter(())
        while True:
            try:
                response = await invoke()
            except grpc.RpcError as exc:  # grpc.aio.AioRpcError subclasses it
                err = from_rpc_error(exc)
                bound = next(delays, None)
                wait = None if bound is None else self._retry.wait_s(bound, err)
                if wait is None:
                    raise err from exc
                await asyncio.sleep(wait)
                continue
            return _checked(response, response_type)

    @overload
    async def send(
        self,
        chat_id: str | int,
        text: str = "",
        *,
        wait: Literal[False] = False,
        **options: Unpack[SendOptions],
    ) -> pb.SendResponse: ...

    @overload
    async def send(
        self,
        chat_id: str | int,
        text: str = "",
        *,
        wait: Literal[True],
        wait_timeout: float | None = None,
        **options: Unpack[SendOptions],
    ) -> pb.Job: ...

    @overload
    async def send(
        self,
        chat_id: str | int,
        text: str = "",
        *,
        wait: bool,
        wait_timeout: float | None = None,
        **options: Unpack[SendOptions],
    ) -> pb.SendResponse | pb.Job: ...

    async def send(
        self,
        chat_id: str | int,
        text: str = "",
        *,
        parse_mode: ParseModeLike | None = None,
        priority: int = 0,
        delay: float | timedelta | None = None,
        send_at: datetime | None = None,
        idempotency_key: str | None = None,
        max_attempts: int = 0,
        disable_notification: bool = False,
        protect_content: bool = False,
        message_thread_id: int = 0,
        reply_markup: pb.InlineKeyboardMarkup | None = None,
        link_preview: pb.LinkPreviewOptions | None = None,
        allow_paid_broadcast: bool = False,
        media: pb.Media | None = None,
        media_group: MediaGroupLike | None = None,
        bot: str | None = None,
        wait: bool = False,
        wait_timeout: float | None = None,
    ) -> pb.SendResponse | pb.Job:
        """Enqueue one message; returns once the server stored it.

        ``delay`` (seconds) or ``send_at`` (a timezone-aware datetime; a past one means
        now): deliver no earlier than that. ``media`` sends a file with ``text`` as its
        caption (0..1024 characters); ``media_group`` sends an album of 2..10 items, each
        with its own caption (``text`` empty, no ``reply_markup``). ``bot`` picks the bot
        that sends it (default: the client's).

        ``wait=True`` returns the job once it is final (completed, failed or cancelled)
        instead, as :meth:`wait_job` (``wait_timeout`` is its ``timeout``).
        """
        picked = self._bot_of(bot)
        sent = await self.send_request(
            _with_send_at(
                build_send_request(
                    chat_id,
                    text,
                    parse_mode=parse_mode,
                    priority=priority,
                    delay=delay,
                    idempotency_key=idempotency_key,
                    max_attempts=max_attempts,
                    disable_notification=disable_notification,
                    protect_content=protect_content,
                    message_thread_id=message_thread_id,
                    reply_markup=reply_markup,
                    link_preview=link_preview,
                    allow_paid_broadcast=allow_paid_broadcast,
                    media=media,
                    media_group=media_group,
                    bot=picked,
                ),
                send_at,
            ),
            # Already the call's pick: "" must stay the gateway's default, not the client's.
            bot=picked,
        )
        return await self.wait_job(sent.job_id, timeout=wait_timeout) if wait else sent

    async def send_request(self, req: pb.SendRequest, *, bot: str | None = None) -> pb.SendResponse:
        """Enqueue a prepared SendRequest (see the blocking client)."""
        keyed = with_idempotency_key(with_bot(req, self._bot_of(bot)))
        return await self._call(self._stub.Send, keyed, pb.SendResponse)

    async def send_batch(
        self,
        requests: Sequence[pb.SendRequest],
        *,
        validate_only: bool = False,
        bot: str | None = None,
    ) -> list[pb.SendResponse]:
        """Enqueue many messages all-or-nothing; results are in request order (none with
        ``validate_only``: the server only checks them); see the blocking client."""
        req = batch_request(requests, validate_only, self._bot_of(bot))
        return list((await self._call(self._stub.SendBatch, req, pb.SendBatchResponse)).results)

    async def get_job(self, job_id: str) -> pb.Job:
        """The job with its delivery state."""
        req = pb.GetJobRequest(job_id=job_id)
        return (await self._call(self._stub.GetJob, req, pb.GetJobResponse)).job

    def watch_events(
        self,
        *,
        start_cursor: str = "",
        job_ids: str | Iterable[str] = (),
        states: Iterable[JobStateLike | str] = (),
        chat_id: str | int | None = None,
        reconnect_for_s: float | None = DEFAULT_RECONNECT_FOR_S,
        bot: str | None = None,
    ) -> AsyncEventIterator:
        """Iterate (``async for``) over job state changes as they happen, reconnecting and
        resuming by itself (see the blocking client). Use it as an async context manager,
        or ``aclose()`` it, to end the stream."""
        req = self._watch_request(start_cursor, job_ids, states, chat_id, bot)
        resume = Resume(req, reconnect_for_s=reconnect_for_s, deadline=None)
        return AsyncEventIterator(self._open_watch, resume)

    # The blocking client's signature; the timeout also bounds each call's gRPC deadline.
    async def wait_job(self, job_id: str, *, timeout: float | None = None) -> pb.Job:  # noqa: ASYNC109
        """The job once it is final (see the blocking client)."""
        deadline = _deadline(timeout)
        resume = Resume(_final_request(job_id), reconnect_for_s=DEFAULT_RECONNECT_FOR_S)
        while True:
            resume.deadline = _recheck_by(deadline)
            try:
                async with AsyncEventIterator(self._open_watch, resume) as events:
                    await events.connect()
                    req = pb.GetJobRequest(job_id=job_id)
                    reply = await self._call(self._stub.GetJob, req, pb.GetJobResponse, deadline)
                    if reply.job.state in FINAL_STATES:
                        return reply.job
                    await anext(events)
            except DeadlineExceededError as err:
                if deadline is not None and time.monotonic() >= deadline:
                    raise _job_timeout_error(job_id, timeout) from err

    async def cancel_job(self, job_id: str) -> pb.Job:
        """Cancel a job not yet handed to Telegram; returns the cancelled job."""
        req = pb.CancelJobRequest(job_id=job_id)
        return (await self._call(self._stub.CancelJob, req, pb.CancelJobResponse)).job

    async def retry_job(self, job_id: str) -> pb.Job:
        """Queue a failed job again with a fresh attempt budget."""
        req = pb.RetryJobRequest(job_id=job_id)
        return (await self._call(self._stub.RetryJob, req, pb.RetryJobResponse)).job

    async def upload_file(
        self,
        source: UploadSource,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        size: int | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        timeout_s: float | None = None,
        bot: str | None = None,
    ) -> pb.UploadFileResponse:
        """Store a file for sends that name its ``upload_id`` (see the blocking client);
        the file is read in a thread, off the event loop."""
        plan = plan_upload(
            source,
            filename=filename,
            content_type=content_type,
            size=size,
            chunk_size=chunk_size,
            bot=self._bot_of(bot),
        )
        timeout = self._timeout_s if timeout_s is None else timeout_s
        return await self._attempts(
            lambda: self._stub.UploadFile(
                plan.async_requests(), timeout=timeout, metadata=self._metadata
            ),
            pb.UploadFileResponse,
            retry=plan.restartable,
        )

    async def edit(
        self,
        job_id: str,
        *,
        text: str | None = None,
        parse_mode: ParseModeLike | None = None,
        reply_markup: pb.InlineKeyboardMarkup | None = None,
        media: pb.Media | None = None,
        link_preview: pb.LinkPreviewOptions | None = None,
        remove_keyboard: bool = False,
        update_mask: Sequence[str] | None = None,
        validate_only: bool = False,
    ) -> pb.Job:
        """Change the message of send job ``job_id`` (see the blocking client)."""
        req = build_edit_request(
            job_id,
            text=text,
            parse_mode=parse_mode,
            reply_markup=reply_markup,
            media=media,
            link_preview=link_preview,
            remove_keyboard=remove_keyboard,
            update_mask=update_mask,
            validate_only=validate_only,
        )
        return (await self._call(self._stub.EditMessage, req, pb.EditMessageResponse)).job

    async def delete(self, job_id: str, *, validate_only: bool = False) -> pb.Job:
        """Delete the message (or album) of send job ``job_id`` (see the blocking client)."""
        req = pb.DeleteMessageRequest(job_id=job_id, validate_only=validate_only)
        return (await self._call(self._stub.DeleteMessage, req, pb.DeleteMessageResponse)).job

    async def retry_jobs(
        self,
        state: JobStateLike | str | None = None,
        chat_id: str | int | None = None,
        *,
        validate_only: bool = False,
        bot: str | None = None,
    ) -> pb.RetryJobsResponse:
        """Queue again every failed job matching the filter (see the blocking client)."""
        filter_ = _job_filter(state, chat_id, self._bot_of(bot))
        req = pb.RetryJobsRequest(filter=filter_, validate_only=validate_only)
        return await self._call(self._stub.RetryJobs, req, pb.RetryJobsResponse)

    async def cancel_jobs(
        self,
        state: JobStateLike | str | None = None,
        chat_id: str | int | None = None,
        *,
        validate_only: bool = False,
        bot: str | None = None,
    ) -> pb.CancelJobsResponse:
        """Cancel every waiting/delayed job matching the filter (see the blocking client)."""
        filter_ = _job_filter(state, chat_id, self._bot_of(bot))
        req = pb.CancelJobsRequest(filter=filter_, validate_only=validate_only)
        return await self._call(self._stub.CancelJobs, req, pb.CancelJobsResponse)

    async def list_jobs(
        self,
        state: JobStateLike | str | None = None,
        page_size: int = 100,
        *,
        bot: str | None = None,
    ) -> AsyncIterator[pb.Job]:
        """Iterate over all jobs in ``state`` (all states when None; ``"failed"`` or
        ``pb.JOB_STATE_FAILED``) of ``bot`` (default: the client's), page by page."""
        state = _optional_state(state)
        picked = self._bot_of(bot)
        token = ""
        while True:
            req = list_request(state, page_size, token, picked)
            page = await self._call(self._stub.ListJobs, req, pb.ListJobsResponse)
            for job in page.jobs:
                yield job
            token = page.next_page_token
            if not token:
                return

    async def stats(self, *, bot: str | None = None) -> pb.GetStatsResponse:
        """Queue depths and lifetime totals (see the blocking client)."""
        req = pb.GetStatsRequest(bot=self._bot_of(bot))
        return await self._call(self._stub.GetStats, req, pb.GetStatsResponse)

    async def list_suppressed_chats(
        self, page_size: int = 0, page_token: str = "", *, bot: str | None = None
    ) -> pb.ListSuppressedChatsResponse:
        """One page of the suppressed chats, newest first (see the blocking client)."""
        req = pb.ListSuppressedChatsRequest(
            page_size=page_size, page_token=page_token, bot=self._bot_of(bot)
        )
        return await self._call(self._stub.ListSuppressedChats, req, pb.ListSuppressedChatsResponse)

    async def unsuppress_chat(
        self, chat_id: str | int, *, validate_only: bool = False, bot: str | None = None
    ) -> pb.SuppressedChat:
        """Let messages reach a suppressed chat again (see the blocking client)."""
        req = pb.UnsuppressChatRequest(
            chat_id=str(chat_id), validate_only=validate_only, bot=self._bot_of(bot)
        )
        reply = await self._call(self._stub.UnsuppressChat, req, pb.UnsuppressChatResponse)
        return reply.chat

    async def search_jobs(
        self,
        *,
        chat_id: str | int = "",
        idempotency_key: str = "",
        text: str = "",
        page_size: int = 100,
        bot: str | None = None,
    ) -> AsyncIterator[pb.Job]:
        """Iterate over the matching retained jobs, newest first (see the blocking client)."""
        req = pb.SearchJobsRequest(
            chat_id=str(chat_id),
            idempotency_key=idempotency_key,
            text=text,
            page_size=page_size,
            bot=self._bot_of(bot),
        )
        while True:
            page = await self._call(self._stub.SearchJobs, req, pb.SearchJobsResponse)
            for job in page.jobs:
                yield job
            if not page.next_page_token:
                return
            req.page_token = page.next_page_token

    async def job_events(self, job_id: str) -> list[pb.Event]:
        """The job's state changes, oldest first (see the blocking client)."""
        events: list[pb.Event] = []
        req = pb.ListJobEventsRequest(job_id=job_id, page_size=1000)
        while True:
            page = await self._call(self._stub.ListJobEvents, req, pb.ListJobEventsResponse)
            events.extend(page.events)
            if not page.next_page_token:
                return events
            req.page_token = page.next_page_token

    async def throughput(self, *, bot: str | None = None) -> pb.GetThroughputResponse:
        """Messages per 10 s over the last hour (see the blocking client)."""
        req = pb.GetThroughputRequest(bot=self._bot_of(bot))
        return await self._call(self._stub.GetThroughput, req, pb.GetThroughputResponse)

    async def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

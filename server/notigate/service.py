"""The gRPC NotificationService: validate, translate, call the queue."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from notigate import bulk, changes, rpc_status
from notigate.config import Settings
from notigate.errors import (
    ChangeRefused,
    ChatNotSuppressed,
    IdempotencyKeyReused,
    JobNotFound,
    JobStateConflict,
    QueueFull,
    QueueUnavailable,
    RequestInvalid,
    StoreError,
)
from notigate.events.stream import EventStream, EventTail
from notigate.events.watch import EventFilter, watch
from notigate.group_commit import GroupCommit
from notigate.job_views import PB_TO_STATE, STATE_TO_PB, job_to_pb, new_job, timestamp
from notigate.metrics import Metrics
from notigate.pagination import PageToken, decode_page_token, encode_page_token
from notigate.queue import (
    Enqueued,
    EnqueueOutcome,
    JobState,
    ListCursor,
    NewJob,
    Queue,
    QueueStats,
)
from notigate.suppression import (
    decode_suppression_token,
    encode_suppression_token,
    suppressed_to_pb,
)
from notigate.upload_checks import refusal_status, upload_violations
from notigate.uploads import UploadRefused, UploadStore, receive_upload
from notigate.validation import (
    FieldViolation,
    validate_batch,
    validate_bulk_filter,
    validate_job_id,
    validate_list,
    validate_list_suppressed,
    validate_send,
    validate_unsuppress,
    validate_watch,
)
from notigate.webhooks import WebhookWorker
from notigate_client import pb, pb_grpc

# ListJobs without a state walks the states in JobState's order.
_ALL_STATES: list[int] = list(STATE_TO_PB.values())
_DEFAULT_PAGE_SIZE = 100
# The states RetryJobs and CancelJobs act on; the first list is the default (state unset).
_RETRYABLE = [pb.JOB_STATE_FAILED]
_CANCELLABLE = [pb.JOB_STATE_WAITING, pb.JOB_STATE_DELAYED]
_SPANS = ((86_400, "day"), (3_600, "hour"), (60, "minute"), (1, "second"))
# Distinct unexpected Redis errors logged in full; later repeats only count in the metric.
_LOGGED_STORE_BUGS_MAX = 100

log = logging.getLogger(__name__)


def _span(seconds: int) -> str:
    """``604800`` -> ``"7 days"``: the largest unit that divides the span exactly."""
    for size, unit in _SPANS:
        if seconds % size == 0 and seconds >= size:
            n = seconds // size
            return f"{n:,} {unit}{'' if n == 1 else 's'}"
    return "0 seconds"


def retention_text(settings: Settings) -> str:
    """How long finished jobs stay visible, in the settings' figures."""
    return (
        f"finished jobs are kept for {_span(settings.keep_age_s)}, and only the newest "
        f"{settings.keep_completed:,} completed, {settings.keep_completed:,} cancelled and "
        f"{settings.keep_failed:,} failed"
    )


def bot_pause_warning(stats: QueueStats) -> str | None:
    """What GetStats says while the whole bot is paused after 429s (None when it is not)."""
    if stats.paused_until_ms <= stats.now_ms:
        return None
    until = Timestamp()
    until.FromMilliseconds(stats.paused_until_ms)
    left_s = (stats.paused_until_ms - stats.now_ms) / 1000
    reason = stats.paused_reason or "429s from several chats"
    return (
        f"the whole bot is paused until {until.ToJsonString()} ({left_s:.1f} s left): "
        f"{reason}; queued messages wait and nothing is lost. If it keeps happening, lower "
        "NOTIGATE_GLOBAL_RATE"
    )


def _present(warning: str | None) -> list[str]:
    return [] if warning is None else [warning]


class NotificationService(pb_grpc.NotificationServiceServicer):
    """Implements notigate.v1.NotificationService on the Redis queue."""

    def __init__(
        self,
        queue: Queue,
        settings: Settings,
        *,
        warnings: Callable[[], Sequence[str]] = tuple,
        metrics: Metrics | None = None,
        uploads: UploadStore | None = None,
        event_tail: EventTail,
        webhooks: WebhookWorker | None = None,
    ) -> None:
        self.queue = queue
        self.events = EventStream(queue.redis, queue.keys.events)
        # The gateway's one blocking reader of the stream, which caught-up watchers wait on.
        self.event_tail = event_tail
        # The webhook's delivery, reported by GetStats (None: no webhook configured).
        self.webhooks = webhooks
        # Files stored through UploadFile (None: this gateway takes no uploads).
        self.uploads = uploads
        self.settings = settings
        self.metrics = metrics or Metrics()
        self._warnings = warnings
        self._logged_store_bugs: set[str] = set()
        # Concurrent Sends share one enqueue script call (the script takes batches), each
        # standing alone in it: one Send's reused idempotency key fails that Send only.
        self._sends: GroupCommit[NewJob, Enqueued] = GroupCommit(
            lambda jobs: queue.enqueue(jobs, all_or_nothing=False),
            max_items=settings.max_batch,
            linger_s=settings.send_linger_ms / 1000,
        )

    @asynccontextmanager
    async def _errors(self, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        """Translate the queue's exceptions into gRPC statuses (the one place)."""
        try:
            yield
        except JobNotFound as exc:
            await rpc_status.abort(context, await self._not_found(exc.job_id))
        except ChatNotSuppressed as exc:
            await rpc_status.abort(
                context,
                rpc_status.not_found(
                    "chat",
                    exc.chat_id,
                    str(exc),
                    description="not suppressed",
                    reason=rpc_status.Reason.CHAT_NOT_SUPPRESSED,
                ),
            )
        except JobStateConflict as exc:
            violation = rpc_status.precondition_violation(
                "JOB_STATE", f"jobs/{exc.job_id}", f"job is {exc.state}"
            )
            reason = (
                rpc_status.Reason.JOB_NOT_CANCELLABLE
                if exc.operation == "cancel"
                else rpc_status.Reason.JOB_NOT_RETRYABLE
            )
            await rpc_status.abort(
                context,
                rpc_status.failed_precondition([violation], reason=reason, message=str(exc)),
            )
        except ChangeRefused as exc:
            violation = rpc_status.precondition_violation(
                "MESSAGE_STATE", f"jobs/{exc.job_id}", str(exc)
            )
            reason = (
                rpc_status.Reason.MESSAGE_NOT_DELETABLE
                if "delete" in str(exc)
                else rpc_status.Reason.MESSAGE_NOT_EDITABLE
            )
            await rpc_status.abort(
                context,
                rpc_status.failed_precondition([violation], reason=reason, message=str(exc)),
            )
        except RequestInvalid as exc:
            await rpc_status.abort(context, rpc_status.invalid_argument(exc.violations))
        except IdempotencyKeyReused as exc:
            metadata = {"idempotency_key": exc.key, "job_id": exc.job_id}
            if exc.index is not None:
                metadata["index"] = str(exc.index)
            await rpc_status.abort(
                context, rpc_status.already_exists("job", exc.job_id, str(exc), metadata=metadata)
            )
        except QueueUnavailable as exc:
            self.metrics.redis_error(exc.kind)
            await rpc_status.abort(context, rpc_status.unavailable(f"{exc}; retry"))
        except QueueFull as exc:
            self.metrics.redis_error(exc.kind)
            await rpc_status.abort(context, rpc_status.resource_exhausted(str(exc)))
        except StoreError as exc:
            # A bug (a script error): the detail goes to the log once, not to the client.
            self.metrics.redis_error(exc.kind)
            detail = str(exc)
            if (
                detail not in self._logged_store_bugs
                and len(self._logged_store_bugs) < _LOGGED_STORE_BUGS_MAX
            ):
                self._logged_store_bugs.add(detail)
                log.error("unexpected Redis error (%s): %s", exc.kind, detail, exc_info=exc)
            await rpc_status.abort(
                context, rpc_status.internal("internal error in the queue store (logged)")
            )

    async def _not_found(self, job_id: str) -> grpc.Status:
        """NOT_FOUND saying whether the job may have been trimmed by retention.

        Ids only grow but are not dense (they follow Redis's clock), so a missing id at
        or below the newest was trimmed or never used; one above it was never created.
        """
        if not job_id.isdigit():
            return rpc_status.not_found("job", job_id)
        try:
            newest = await self.queue.last_job_id()
        except StoreError:
            # The plain answer is still right; Redis being down is for the next call to say.
            return rpc_status.not_found("job", job_id)
        if int(job_id) <= newest:
            message = (
                f"no job {job_id}: trimmed by retention ({retention_text(self.settings)})"
                " or never used (ids are not dense)"
            )
            return rpc_status.not_found(
                "job", job_id, message, description="trimmed by retention or never used"
            )
        message = f"no such job: {job_id} (the newest job id is {newest})"
        return rpc_status.not_found("job", job_id, message, description="never created")

    async def _invalid(
        self, context: grpc.aio.ServicerContext, violations: list[FieldViolation]
    ) -> None:
        if violations:
            await rpc_status.abort(context, rpc_status.invalid_argument(violations))

    async def _enqueue(
        self,
        context: grpc.aio.ServicerContext,
        requests: Sequence[pb.SendRequest],
        *,
        batch: bool = False,
    ) -> list[Enqueued]:
        async with self._errors(context):
            if len(requests) == 1:
                [request] = requests
                result = await self._sends.submit(new_job(request))
                if result.outcome is EnqueueOutcome.KEY_REUSED:
                    # Nothing was stored for it; for a batch of one, nothing of the batch.
                    raise IdempotencyKeyReused(
                        request.idempotency_key, result.job_id, index=0 if batch else None
                    )
                results = [result]
            else:
                # All or nothing: a reused key anywhere in the batch stores nothing (raises).
                results = await self.queue.enqueue([new_job(r) for r in requests])
        self.metrics.jobs_enqueued.inc(sum(r.outcome is EnqueueOutcome.CREATED for r in results))
        return results

    async def _check_uploads(
        self, context: grpc.aio.ServicerContext, requests: Sequence[pb.SendRequest], prefix: str
    ) -> None:
        async with self._errors(context):
            violations = await upload_violations(
                self.uploads, requests, prefix, self.settings.upload_ttl_s
            )
        await self._invalid(context, violations)

    async def UploadFile(
        self,
        request_iterator: AsyncIterator[pb.UploadFileRequest],
        context: grpc.aio.ServicerContext,
    ) -> pb.UploadFileResponse:
        if self.uploads is None:
            await rpc_status.abort(
                context,
                rpc_status.failed_precondition(
                    [], reason=rpc_status.Reason.INVALID_REQUEST, message="uploads are off"
                ),
            )
        try:
            async with self._errors(context):
                return await receive_upload(self.uploads, request_iterator)
        except UploadRefused as exc:
            await rpc_status.abort(context, refusal_status(exc))

    async def Send(
        self, request: pb.SendRequest, context: grpc.aio.ServicerContext
    ) -> pb.SendResponse:
        await self._invalid(context, validate_send(request))
        await self._check_uploads(context, [request], "")
        [result] = await self._enqueue(context, [request])
        return pb.SendResponse(job_id=result.job_id, duplicate=result.duplicate)

    async def SendBatch(
        self, request: pb.SendBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.SendBatchResponse:
        await self._invalid(context, validate_batch(request, max_batch=self.settings.max_batch))
        await self._check_uploads(context, request.messages, "messages[{}].")
        if request.validate_only:
            return pb.SendBatchResponse()
        results = await self._enqueue(context, request.messages, batch=True)
        return pb.SendBatchResponse(
            results=[pb.SendResponse(job_id=r.job_id, duplicate=r.duplicate) for r in results]
        )

    async def GetJob(
        self, request: pb.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetJobResponse:
        await self._invalid(context, validate_job_id(request.job_id))
        async with self._errors(context):
            record = await self.queue.get(request.job_id)
            if record is None:
                raise JobNotFound(request.job_id)
        return pb.GetJobResponse(job=job_to_pb(record))

    async def CancelJob(
        self, request: pb.CancelJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelJobResponse:
        await self._invalid(context, validate_job_id(request.job_id))
        async with self._errors(context):
            record = await self.queue.cancel(request.job_id)
        return pb.CancelJobResponse(job=job_to_pb(record))

    async def RetryJob(
        self, request: pb.RetryJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.RetryJobResponse:
        await self._invalid(context, validate_job_id(request.job_id))
        async with self._errors(context):
            record = await self.queue.requeue(request.job_id)
        return pb.RetryJobResponse(job=job_to_pb(record))

    async def ListJobs(
        self, request: pb.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListJobsResponse:
        await self._invalid(context, validate_list(request))
        states: list[int] = [int(request.state)] if request.state else _ALL_STATES
        size = request.page_size or _DEFAULT_PAGE_SIZE
        token = decode_page_token(request.page_token) if request.page_token else None
        state = token.state if token else states[0]
        after = ListCursor(token.score, token.job_id) if token and token.job_id else None
        jobs: list[pb.Job] = []
        next_token = ""
        async with self._errors(context):
            for i in range(states.index(state), len(states)):
                records, after = await self.queue.list(
                    PB_TO_STATE[states[i]], after, size - len(jobs)
                )
                jobs.extend(job_to_pb(r) for r in records)
                if after is not None:  # this state holds more than the page took
                    next_token = encode_page_token(PageToken(states[i], after.score, after.job_id))
                    break
                if len(jobs) >= size:
                    if i + 1 < len(states):
                        next_token = encode_page_token(PageToken(states[i + 1]))
                    break
        return pb.ListJobsResponse(jobs=jobs, next_page_token=next_token)

    async def GetStats(
        self, request: pb.GetStatsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetStatsResponse:
        async with self._errors(context):
            stats = await self.queue.stats()
            webhooks = None if self.webhooks is None else await self.webhooks.stats()
        t = stats.totals
        reply = pb.GetStatsResponse(
            waiting=stats.counts[JobState.WAITING],
            active=stats.counts[JobState.ACTIVE],
            delayed=stats.counts[JobState.DELAYED],
            completed=stats.counts[JobState.COMPLETED],
            failed=stats.counts[JobState.FAILED],
            cancelled=stats.counts[JobState.CANCELLED],
            total_enqueued=t.get("enqueued", 0),
            total_sent=t.get("sent", 0),
            total_failed=t.get("failed", 0),
            total_retried=t.get("retried", 0),
            total_rate_limited=t.get("rate_limited", 0),
            total_stalled=t.get("stalled", 0),
            total_cancelled=t.get("cancelled", 0),
            total_duplicates=t.get("duplicates", 0),
            suppressed_chats=stats.suppressed_chats,
            global_rate=self.settings.global_rate,
            warnings=[*self._warnings(), *_present(bot_pause_warning(stats))],
            retention=pb.Retention(
                keep_completed=self.settings.keep_completed,
                keep_failed=self.settings.keep_failed,
                keep_age=Duration(seconds=self.settings.keep_age_s),
            ),
        )
        if webhooks is not None:
            reply.webhooks.CopyFrom(webhooks.to_pb())
        if stats.paused_until_ms > stats.now_ms:
            reply.paused_until.CopyFrom(timestamp(stats.paused_until_ms))
        if stats.oldest_waiting_ms is not None:
            age = Duration()
            age.FromMilliseconds(max(0, stats.now_ms - stats.oldest_waiting_ms))
            reply.oldest_waiting_age.CopyFrom(age)
        return reply

    async def RetryJobs(
        self, request: pb.RetryJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.RetryJobsResponse:
        """Queue every failed job matching the filter again (at most
        bulk.MAX_JOBS_PER_CALL per call; validate_only counts them all)."""
        await self._invalid(context, validate_bulk_filter(request.filter, _RETRYABLE))
        async with self._errors(context):
            outcome = await bulk.retry_jobs(
                self.queue, request.filter.chat_id, validate_only=request.validate_only
            )
        return pb.RetryJobsResponse(count=outcome.count, sample_job_ids=outcome.sample)

    async def CancelJobs(
        self, request: pb.CancelJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelJobsResponse:
        """Cancel every waiting and/or delayed job matching the filter (at most
        bulk.MAX_JOBS_PER_CALL per call; validate_only counts them all)."""
        await self._invalid(context, validate_bulk_filter(request.filter, _CANCELLABLE))
        states = [int(request.filter.state)] if request.filter.state else _CANCELLABLE
        async with self._errors(context):
            outcome = await bulk.cancel_jobs(
                self.queue,
                [PB_TO_STATE[s] for s in states],
                request.filter.chat_id,
                validate_only=request.validate_only,
            )
        return pb.CancelJobsResponse(count=outcome.count, sample_job_ids=outcome.sample)

    async def WatchEvents(
        self, request: pb.WatchEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchEventsResponse]:
        await self._invalid(context, validate_watch(request))
        wanted = EventFilter.of(request.job_ids, request.states, request.chat_id)
        async with self._errors(context):
            start = request.start_cursor or await self.events.position()
            # Sent before any event: a caller that reads a job's state after receiving it
            # misses none of the job's later changes (see Client.wait_job).
            await context.send_initial_metadata((("x-notigate-cursor", start),))
            async for response in watch(self.events, self.event_tail, start, wanted):
                yield response

    async def ListSuppressedChats(
        self, request: pb.ListSuppressedChatsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSuppressedChatsResponse:
        await self._invalid(context, validate_list_suppressed(request))
        after = decode_suppression_token(request.page_token) if request.page_token else None
        async with self._errors(context):
            chats, cursor = await self.queue.suppressed(
                after, request.page_size or _DEFAULT_PAGE_SIZE
            )
        return pb.ListSuppressedChatsResponse(
            chats=[suppressed_to_pb(c) for c in chats],
            next_page_token=encode_suppression_token(cursor) if cursor else "",
        )

    async def UnsuppressChat(
        self, request: pb.UnsuppressChatRequest, context: grpc.aio.ServicerContext
    ) -> pb.UnsuppressChatResponse:
        await self._invalid(context, validate_unsuppress(request))
        async with self._errors(context):
            lifted = await self.queue.unsuppress(
                request.chat_id, validate_only=request.validate_only
            )
        return pb.UnsuppressChatResponse(chat=suppressed_to_pb(lifted))

    async def _job(self, job_id: str) -> pb.Job:
        record = await self.queue.get(job_id)
        if record is None:
            raise JobNotFound(job_id)
        return job_to_pb(record)

    async def EditMessage(
        self, request: pb.EditMessageRequest, context: grpc.aio.ServicerContext
    ) -> pb.EditMessageResponse:
        await self._invalid(context, validate_job_id(request.job_id))
        if "media" in changes.edit_paths(request)[0]:
            await self._check_uploads(context, [pb.SendRequest(media=request.media)], "")
        async with self._errors(context):
            change = await changes.edit_message(
                self.queue, request, validate_only=request.validate_only
            )
            job = await self._job(change.job_id)
        if change.written and job.kind == pb.JOB_KIND_EDIT:
            self.metrics.jobs_enqueued.inc()
        return pb.EditMessageResponse(job=job)

    async def DeleteMessage(
        self, request: pb.DeleteMessageRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteMessageResponse:
        await self._invalid(context, validate_job_id(request.job_id))
        async with self._errors(context):
            change = await changes.delete_message(
                self.queue, request.job_id, validate_only=request.validate_only
            )
            job = await self._job(change.job_id)
        if change.written and job.kind == pb.JOB_KIND_DELETE:
            self.metrics.jobs_enqueued.inc()
        return pb.DeleteMessageResponse(job=job)

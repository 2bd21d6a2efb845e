"""The gRPC NotificationService: validate, translate, call the queue."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import grpc

from notigate import bulk, changes, rpc_status
from notigate.bot_status import read_status
from notigate.bots import Bot, Bots, UnknownBot
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
from notigate.events.job_events import job_events
from notigate.events.watch import EventFilter, watch
from notigate.job_views import PB_TO_STATE, STATE_TO_PB, job_to_pb, new_job
from notigate.metrics import Metrics
from notigate.pagination import PageToken, decode_page_token, encode_page_token
from notigate.queue import (
    Enqueued,
    EnqueueOutcome,
    JobRecord,
    ListCursor,
)
from notigate.queue.job_ids import bot_of, id_prefix, number_of
from notigate.search import search_jobs
from notigate.search_token import decode_search_token, encode_search_token
from notigate.security import BotAccess
from notigate.stats_views import bot_pause_warning, stats_to_pb, sum_stats
from notigate.suppression import (
    decode_suppression_token,
    encode_suppression_token,
    suppressed_to_pb,
)
from notigate.text_search import TextQuery
from notigate.throughput import intervals, throughput_to_pb
from notigate.upload_checks import refusal_status, upload_violations
from notigate.uploads import UploadRefused, UploadStore, receive_upload
from notigate.validation import (
    FieldViolation,
    validate_batch,
    validate_bulk_filter,
    validate_job_id,
    validate_list,
    validate_list_job_events,
    validate_list_suppressed,
    validate_search,
    validate_send,
    validate_unsuppress,
    validate_watch,
)
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


def _present(warning: str | None) -> list[str]:
    return [] if warning is None else [warning]


class NotificationService(pb_grpc.NotificationServiceServicer):
    """Implements notigate.v1.NotificationService on the Redis queue."""

    def __init__(
        self,
        bots: Bots,
        settings: Settings,
        *,
        warnings: Callable[[Bot], Sequence[str]] = lambda _bot: (),
        metrics: Metrics | None = None,
        access: BotAccess | None = None,
    ) -> None:
        self.bots = bots
        self.settings = settings
        self.metrics = metrics or Metrics()
        # What GetStats warns of for one bot (its token, the store's policy, ...).
        self._warnings = warnings
        # Which bots a call's token may use (no bindings: every token may use every bot).
        self._access = access or BotAccess(())
        self._logged_store_bugs: set[str] = set()

    async def _bot(self, context: grpc.aio.ServicerContext, name: str, field: str) -> Bot:
        """The bot a request's ``field`` names, if the caller may use it (else aborts)."""
        try:
            bot = self.bots.pick(name)
        except UnknownBot as exc:
            await rpc_status.abort(
                context,
                rpc_status.invalid_argument(
                    [FieldViolation(field=field, description=str(exc))],
                    reason=rpc_status.Reason.BOT_UNKNOWN,
                ),
            )
        await self._allowed(context, bot)
        return bot

    async def _job_bot(self, context: grpc.aio.ServicerContext, job_id: str) -> Bot:
        """The bot of a well-formed job id, if the caller may use it (else aborts)."""
        bot = self.bots.of_job(job_id)
        if bot is None:
            await rpc_status.abort(
                context,
                rpc_status.not_found(
                    "job",
                    job_id,
                    f"no such job: {job_id} (this gateway serves no bot "
                    f"{bot_of(job_id)!r}; the bots are {', '.join(self.bots)})",
                    description="no such bot",
                ),
            )
        await self._allowed(context, bot)
        return bot

    def _allowed_bots(self, context: grpc.aio.ServicerContext) -> frozenset[str] | None:
        """The bots the call's token may use (None: every bot)."""
        return self._access.allowed(context.invocation_metadata())

    async def _allowed(self, context: grpc.aio.ServicerContext, bot: Bot) -> None:
        allowed = self._allowed_bots(context)
        if allowed is not None and bot.name not in allowed:
            await rpc_status.abort(
                context,
                rpc_status.permission_denied(
                    f"this API token may not use bot {bot.name!r} "
                    f"(it may use {', '.join(sorted(allowed))})",
                    metadata={"bot": bot.name},
                ),
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
        number = number_of(job_id)
        bot = self.bots.of_job(job_id)
        if number is None or bot is None:
            return rpc_status.not_found("job", job_id)
        try:
            newest = await bot.queue.last_job_id()
        except StoreError:
            # The plain answer is still right; Redis being down is for the next call to say.
            return rpc_status.not_found("job", job_id)
        if number <= newest:
            message = (
                f"no job {job_id}: trimmed by retention ({retention_text(self.settings)})"
                " or never used (ids are not dense)"
            )
            return rpc_status.not_found(
                "job", job_id, message, description="trimmed by retention or never used"
            )
        message = f"no such job: {job_id} (the newest job id is {id_prefix(bot.name)}{newest})"
        return rpc_status.not_found("job", job_id, message, description="never created")

    async def _invalid(
        self, context: grpc.aio.ServicerContext, violations: list[FieldViolation]
    ) -> None:
        if violations:
            await rpc_status.abort(context, rpc_status.invalid_argument(violations))

    async def _enqueue(
        self,
        context: grpc.aio.ServicerContext,
        bot: Bot,
        requests: Sequence[pb.SendRequest],
        *,
        batch: bool = False,
    ) -> list[Enqueued]:
        async with self._errors(context):
            if len(requests) == 1:
                [request] = requests
                result = await bot.sends.submit(new_job(request))
                if result.outcome is EnqueueOutcome.KEY_REUSED:
                    # Nothing was stored for it; for a batch of one, nothing of the batch.
                    raise IdempotencyKeyReused(
                        request.idempotency_key, result.job_id, index=0 if batch else None
                    )
                results = [result]
            else:
                # All or nothing: a reused key anywhere in the batch stores nothing (raises).
                results = await bot.queue.enqueue([new_job(r) for r in requests])
        created = sum(r.outcome is EnqueueOutcome.CREATED for r in results)
        self.metrics.jobs_enqueued.labels(bot.name).inc(created)
        return results

    async def _check_uploads(
        self,
        context: grpc.aio.ServicerContext,
        bot: Bot,
        requests: Sequence[pb.SendRequest],
        prefix: str,
    ) -> None:
        async with self._errors(context):
            violations = await upload_violations(
                bot.uploads, requests, prefix, self.settings.upload_ttl_s
            )
        await self._invalid(context, violations)

    async def UploadFile(
        self,
        request_iterator: AsyncIterator[pb.UploadFileRequest],
        context: grpc.aio.ServicerContext,
    ) -> pb.UploadFileResponse:
        async def store_of(metadata: pb.UploadMetadata) -> UploadStore:
            bot = await self._bot(context, metadata.bot, "metadata.bot")
            return bot.uploads

        try:
            async with self._errors(context):
                return await receive_upload(store_of, request_iterator)
        except UploadRefused as exc:
            await rpc_status.abort(context, refusal_status(exc))

    async def Send(
        self, request: pb.SendRequest, context: grpc.aio.ServicerContext
    ) -> pb.SendResponse:
        await self._invalid(context, validate_send(request))
        bot = await self._bot(context, request.bot, "bot")
        await self._check_uploads(context, bot, [request], "")
        [result] = await self._enqueue(context, bot, [request])
        return pb.SendResponse(job_id=result.job_id, duplicate=result.duplicate)

    async def SendBatch(
        self, request: pb.SendBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.SendBatchResponse:
        await self._invalid(context, validate_batch(request, max_batch=self.settings.max_batch))
        bot = await self._batch_bot(context, request.messages)
        await self._check_uploads(context, bot, request.messages, "messages[{}].")
        if request.validate_only:
            return pb.SendBatchResponse()
        results = await self._enqueue(context, bot, request.messages, batch=True)
        return pb.SendBatchResponse(
            results=[pb.SendResponse(job_id=r.job_id, duplicate=r.duplicate) for r in results]
        )

    async def _batch_bot(
        self, context: grpc.aio.ServicerContext, messages: Sequence[pb.SendRequest]
    ) -> Bot:
        """The one bot of a batch: all or nothing is one script call, on one bot's queue.
        (Each name is looked up and checked against the token once, not once a message.)"""
        bot = await self._bot(context, messages[0].bot, "messages[0].bot")
        for i, message in enumerate(messages[1:], start=1):
            if message.bot == messages[0].bot:
                continue
            other = await self._bot(context, message.bot, f"messages[{i}].bot")
            if other is not bot:
                await self._invalid(
                    context,
                    [
                        FieldViolation(
                            field=f"messages[{i}].bot",
                            description=f"a batch goes to one bot: messages[0] is for "
                            f"{bot.name!r}, messages[{i}] for {other.name!r}",
                        )
                    ],
                )
        return bot

    async def GetJob(
        self, request: pb.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetJobResponse:
        await self._invalid(context, validate_job_id(request.job_id))
        bot = await self._job_bot(context, request.job_id)
        async with self._errors(context):
            job = await self._job(bot, request.job_id)
        return pb.GetJobResponse(job=job)

    async def CancelJob(
        self, request: pb.CancelJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelJobResponse:
        await self._invalid(context, validate_job_id(request.job_id))
        bot = await self._job_bot(context, request.job_id)
        async with self._errors(context):
            record = await bot.queue.cancel(request.job_id)
        return pb.CancelJobResponse(job=job_to_pb(record))

    async def RetryJob(
        self, request: pb.RetryJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.RetryJobResponse:
        await self._invalid(context, validate_job_id(request.job_id))
        bot = await self._job_bot(context, request.job_id)
        async with self._errors(context):
            record = await bot.queue.requeue(request.job_id)
        return pb.RetryJobResponse(job=job_to_pb(record))

    async def ListJobs(
        self, request: pb.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListJobsResponse:
        await self._invalid(context, validate_list(request))
        bot = await self._bot(context, request.bot, "bot")
        states: list[int] = [int(request.state)] if request.state else _ALL_STATES
        size = request.page_size or _DEFAULT_PAGE_SIZE
        token = decode_page_token(request.page_token) if request.page_token else None
        if token and token.job_id and bot_of(token.job_id) != bot.name:
            await self._invalid(
                context,
                [FieldViolation(field="page_token", description="the token lists another bot")],
            )
        state = token.state if token else states[0]
        after = ListCursor(token.score, token.job_id) if token and token.job_id else None
        jobs: list[pb.Job] = []
        next_token = ""
        async with self._errors(context):
            for i in range(states.index(state), len(states)):
                records, after = await bot.queue.list(
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

    async def SearchJobs(
        self, request: pb.SearchJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.SearchJobsResponse:
        """A bot's jobs by chat (its index), idempotency key (one lookup) or text (a
        bounded scan per call), newest first; every field set must match."""
        await self._invalid(context, validate_search(request))
        bot = await self._bot(context, request.bot, "bot")
        token = decode_search_token(request.page_token) if request.page_token else None
        if token and token.job_id and bot_of(token.job_id) != bot.name:
            await self._invalid(
                context,
                [FieldViolation(field="page_token", description="the token searches another bot")],
            )
        query = TextQuery(request.text)
        async with self._errors(context):
            if request.idempotency_key:
                # One job or none: a token means the one page was served.
                record = None if token else await bot.queue.job_of_key(request.idempotency_key)
                found = [record] if record and self._key_match(record, request, query) else []
                return pb.SearchJobsResponse(
                    jobs=[job_to_pb(r) for r in found], examined_jobs=int(record is not None)
                )
            page = await search_jobs(
                bot.queue,
                chat_id=request.chat_id,
                query=query,
                size=request.page_size or _DEFAULT_PAGE_SIZE,
                token=token,
            )
        return pb.SearchJobsResponse(
            jobs=[job_to_pb(r) for r in page.jobs],
            next_page_token=encode_search_token(page.token) if page.token else "",
            examined_jobs=page.examined,
        )

    @staticmethod
    def _key_match(record: JobRecord, request: pb.SearchJobsRequest, query: TextQuery) -> bool:
        return (not request.chat_id or record.chat_id == request.chat_id) and query.matches(
            record.payload
        )

    async def ListJobEvents(
        self, request: pb.ListJobEventsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListJobEventsResponse:
        await self._invalid(context, validate_list_job_events(request))
        bot = await self._job_bot(context, request.job_id)
        async with self._errors(context):
            record = await bot.queue.get(request.job_id)
            if record is None:
                raise JobNotFound(request.job_id)
            page = await job_events(
                bot.events,
                record,
                request.page_token,
                request.page_size or _DEFAULT_PAGE_SIZE,
            )
        return pb.ListJobEventsResponse(
            events=page.events, next_page_token=page.next_cursor, events_trimmed=page.trimmed
        )

    async def GetStats(
        self, request: pb.GetStatsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetStatsResponse:
        if request.bot:
            bot = await self._bot(context, request.bot, "bot")
            async with self._errors(context):
                return await self._stats(bot)
        allowed = self._allowed_bots(context)
        bots = [b for b in self.bots.values() if allowed is None or b.name in allowed]
        async with self._errors(context):
            each = await asyncio.gather(*(self._stats(b) for b in bots))
        reply = sum_stats([(b.name, s) for b, s in zip(bots, each, strict=True)])
        reply.bots.extend(
            pb.BotStats(bot=b.name, stats=s, token_ok=b.token_ok())
            for b, s in zip(bots, each, strict=True)
        )
        return reply

    async def _stats(self, bot: Bot) -> pb.GetStatsResponse:
        status = await read_status(bot)
        stats = status.stats
        webhooks = None if bot.webhooks is None else await bot.webhooks.stats()
        warnings = [*self._warnings(bot), *_present(bot_pause_warning(stats))]
        return stats_to_pb(stats, bot.settings, warnings, webhooks, status.monitor, status.alerts)

    async def GetThroughput(
        self, request: pb.GetThroughputRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetThroughputResponse:
        bot = await self._bot(context, request.bot, "bot")
        async with self._errors(context):
            now_ms, samples = await asyncio.gather(
                bot.queue.now_ms(), bot.queue.throughput_samples()
            )
        return throughput_to_pb(intervals(samples, now_ms))

    async def RetryJobs(
        self, request: pb.RetryJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.RetryJobsResponse:
        """Queue every failed job matching the filter again (at most
        bulk.MAX_JOBS_PER_CALL per call; validate_only counts them all)."""
        await self._invalid(context, validate_bulk_filter(request.filter, _RETRYABLE))
        bot = await self._bot(context, request.filter.bot, "filter.bot")
        async with self._errors(context):
            outcome = await bulk.retry_jobs(
                bot.queue, request.filter.chat_id, validate_only=request.validate_only
            )
        return pb.RetryJobsResponse(count=outcome.count, sample_job_ids=outcome.sample)

    async def CancelJobs(
        self, request: pb.CancelJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelJobsResponse:
        """Cancel every waiting and/or delayed job matching the filter (at most
        bulk.MAX_JOBS_PER_CALL per call; validate_only counts them all)."""
        await self._invalid(context, validate_bulk_filter(request.filter, _CANCELLABLE))
        states = [int(request.filter.state)] if request.filter.state else _CANCELLABLE
        bot = await self._bot(context, request.filter.bot, "filter.bot")
        async with self._errors(context):
            outcome = await bulk.cancel_jobs(
                bot.queue,
                [PB_TO_STATE[s] for s in states],
                request.filter.chat_id,
                validate_only=request.validate_only,
            )
        return pb.CancelJobsResponse(count=outcome.count, sample_job_ids=outcome.sample)

    async def WatchEvents(
        self, request: pb.WatchEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchEventsResponse]:
        await self._invalid(context, validate_watch(request))
        bot = await self._watched_bot(context, request)
        wanted = EventFilter.of(request.job_ids, request.states, request.chat_id)
        async with self._errors(context):
            start = request.start_cursor or await bot.events.position()
            # Sent before any event: a caller that reads a job's state after receiving it
            # misses none of the job's later changes (see Client.wait_job).
            await context.send_initial_metadata((("x-notigate-cursor", start),))
            async for response in watch(bot.events, bot.event_tail, start, wanted):
                yield response

    async def _watched_bot(
        self, context: grpc.aio.ServicerContext, request: pb.WatchEventsRequest
    ) -> Bot:
        """The bot whose stream a watch reads: the one named, else the jobs' (one stream
        per bot: the jobs of a watch must be one bot's)."""
        if request.bot or not request.job_ids:
            bot = await self._bot(context, request.bot, "bot")
        else:
            bot = await self._job_bot(context, request.job_ids[0])
        for i, job_id in enumerate(request.job_ids):
            if bot_of(job_id) != bot.name:
                await self._invalid(
                    context,
                    [
                        FieldViolation(
                            field=f"job_ids[{i}]",
                            description=f"job {job_id} is not bot {bot.name!r}'s: a watch "
                            "reads one bot's events (watch each bot in a call of its own)",
                        )
                    ],
                )
        return bot

    async def ListSuppressedChats(
        self, request: pb.ListSuppressedChatsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSuppressedChatsResponse:
        await self._invalid(context, validate_list_suppressed(request))
        bot = await self._bot(context, request.bot, "bot")
        after = decode_suppression_token(request.page_token) if request.page_token else None
        async with self._errors(context):
            chats, cursor = await bot.queue.suppressed(
                after, request.page_size or _DEFAULT_PAGE_SIZE
            )
        return pb.ListSuppressedChatsResponse(
            chats=[suppressed_to_pb(c, bot.name) for c in chats],
            next_page_token=encode_suppression_token(cursor) if cursor else "",
        )

    async def UnsuppressChat(
        self, request: pb.UnsuppressChatRequest, context: grpc.aio.ServicerContext
    ) -> pb.UnsuppressChatResponse:
        await self._invalid(context, validate_unsuppress(request))
        bot = await self._bot(context, request.bot, "bot")
        async with self._errors(context):
            lifted = await bot.queue.unsuppress(
                request.chat_id, validate_only=request.validate_only
            )
        return pb.UnsuppressChatResponse(chat=suppressed_to_pb(lifted, bot.name))

    async def _job(self, bot: Bot, job_id: str) -> pb.Job:
        record = await bot.queue.get(job_id)
        if record is None:
            raise JobNotFound(job_id)
        return job_to_pb(record)

    async def EditMessage(
        self, request: pb.EditMessageRequest, context: grpc.aio.ServicerContext
    ) -> pb.EditMessageResponse:
        await self._invalid(context, validate_job_id(request.job_id))
        bot = await self._job_bot(context, request.job_id)
        if "media" in changes.edit_paths(request)[0]:
            await self._check_uploads(context, bot, [pb.SendRequest(media=request.media)], "")
        async with self._errors(context):
            change = await changes.edit_message(
                bot.queue, request, validate_only=request.validate_only
            )
            job = await self._job(bot, change.job_id)
        if change.written and job.kind == pb.JOB_KIND_EDIT:
            self.metrics.jobs_enqueued.labels(bot.name).inc()
        return pb.EditMessageResponse(job=job)

    async def DeleteMessage(
        self, request: pb.DeleteMessageRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteMessageResponse:
        await self._invalid(context, validate_job_id(request.job_id))
        bot = await self._job_bot(context, request.job_id)
        async with self._errors(context):
            change = await changes.delete_message(
                bot.queue, request.job_id, validate_only=request.validate_only
            )
            job = await self._job(bot, change.job_id)
        if change.written and job.kind == pb.JOB_KIND_DELETE:
            self.metrics.jobs_enqueued.labels(bot.name).inc()
        return pb.DeleteMessageResponse(job=job)

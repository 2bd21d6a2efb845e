"""The dashboard's JSON endpoints: each one is one or a few calls of the gateway's own gRPC
API (see docs/dashboard.md for the contract with the page).

Going through the API rather than around it keeps one implementation of every rule: the
page sees exactly what GetStats, ListJobs or SearchJobs answer, bad input is refused with
the same google.rpc details, and a change is made by the same RPC a grpcurl user calls.
The gateway's API accepts the dashboard's calls with a token of the process's own; what a
session may see and do (its role, its bots) is decided here, before any call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import aiohttp
import grpc
from aiohttp import web
from google.protobuf.message import Message

from notigate.dashboard import render
from notigate.dashboard.sessions import Principal, Session
from notigate.queue.job_ids import JOB_ID, bot_of
from notigate.stats_views import sum_stats
from notigate.validation import is_chat_id
from notigate_client import job_state, pb, pb_grpc

__all__ = [
    "SESSION",
    "Backend",
    "Refused",
    "add_api_routes",
    "checked_bot",
    "json_object",
    "session_of",
    "text_field",
]

# Where the server's middleware leaves the request's session for the handlers.
SESSION: web.RequestKey[Session] = web.RequestKey("session", Session)

_SIMULATOR_LIMIT = 200
_PAGE_SIZE = 50


class Refused(Exception):
    """A request the dashboard answers itself, without calling the API."""

    def __init__(self, status: int, code: str, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.response = render.error(status, code, message, reason=reason)


@dataclass
class Backend:
    """What the endpoints call: the gateway's API (``stub``, with ``metadata``), its bots
    and, in sandbox mode, the simulator's control URL."""

    stub: pb_grpc.NotificationServiceStub
    metadata: tuple[tuple[str, str], ...]
    bots: tuple[str, ...]
    default_bot: str
    sandbox_url: str
    http: aiohttp.ClientSession | None = None

    async def call(self, method: Callable[..., Awaitable[Any]], request: Message) -> Any:
        """One unary call of the API on the session's behalf."""
        return await method(request, metadata=self.metadata, timeout=30)


BACKEND_KEY: web.AppKey[Backend] = web.AppKey("backend", Backend)


def session_of(request: web.Request) -> Session:
    """The request's session (set by the server's middleware before any handler)."""
    return request[SESSION]


def _backend(request: web.Request) -> Backend:
    return request.app[BACKEND_KEY]


def checked_bot(request: web.Request, name: str) -> str:
    """The bot a request names ('' = the default), if the session may use it."""
    backend, principal = _backend(request), session_of(request).principal
    resolved = name or backend.default_bot
    if resolved in backend.bots and not principal.may_use(resolved):
        raise Refused(
            HTTPStatus.FORBIDDEN,
            "PERMISSION_DENIED",
            f"this login may not use bot {resolved!r}",
            "BOT_NOT_ALLOWED",
        )
    return name


def _job_bot(request: web.Request, job_id: str) -> None:
    checked_bot(request, bot_of(job_id))


def _may_act(request: web.Request) -> None:
    if not session_of(request).principal.may_act:
        raise Refused(
            HTTPStatus.FORBIDDEN,
            "PERMISSION_DENIED",
            "this login may only look: its token is read-only",
            "READ_ONLY",
        )


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request's body, which must be a JSON object."""
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise Refused(HTTPStatus.BAD_REQUEST, "INVALID_ARGUMENT", "the body must be a JSON object")
    return body


def text_field(body: dict[str, Any], name: str) -> str:
    """A string field of a JSON body ('' when absent)."""
    value = body.get(name, "")
    if not isinstance(value, str):
        raise Refused(HTTPStatus.BAD_REQUEST, "INVALID_ARGUMENT", f"{name} must be a string")
    return value


def _state(name: str) -> int:
    """A JobState by name ("failed", any case; '' = unspecified)."""
    if not name:
        return pb.JOB_STATE_UNSPECIFIED
    try:
        return job_state(name)
    except ValueError as exc:
        raise Refused(HTTPStatus.BAD_REQUEST, "INVALID_ARGUMENT", f"state: {exc}") from None


def _page_size(request: web.Request) -> int:
    raw = request.query.get("page_size", "")
    # Out-of-range sizes go to the API, which refuses them with its own violation.
    return int(raw) if raw.lstrip("-").isdigit() and len(raw) < 10 else _PAGE_SIZE


async def overview(request: web.Request) -> web.Response:
    """GetStats: of one bot, or summed over the bots the session may use."""
    backend, principal = _backend(request), session_of(request).principal
    bot = checked_bot(request, request.query.get("bot", ""))
    stats = await backend.call(backend.stub.GetStats, pb.GetStatsRequest(bot=bot))
    if not bot and principal.bots is not None:
        # A login bound to some bots sees their sum, never the gateway's.
        mine = [b for b in stats.bots if principal.may_use(b.bot)]
        stats = sum_stats([(b.bot, b.stats) for b in mine])
        stats.bots.extend(mine)
    return render.json({"stats": render.message_json(stats)})


async def throughput(request: web.Request) -> web.Response:
    backend = _backend(request)
    bot = checked_bot(request, request.query.get("bot", ""))
    answer = await backend.call(backend.stub.GetThroughput, pb.GetThroughputRequest(bot=bot))
    return render.json(render.message_json(answer))


async def jobs(request: web.Request) -> web.Response:
    backend, q = _backend(request), request.query
    call = pb.ListJobsRequest(
        bot=checked_bot(request, q.get("bot", "")),
        state=_state(q.get("state", "")),  # type: ignore[arg-type]
        page_size=_page_size(request),
        page_token=q.get("page_token", ""),
    )
    return render.json(render.message_json(await backend.call(backend.stub.ListJobs, call)))


async def _optional(call: Awaitable[Any]) -> Any | None:
    """The answer, or None when there is nothing to find (not found, not a valid id)."""
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
            return None
        raise


async def search(request: web.Request) -> web.Response:
    """The query as a job id, an idempotency key, and a chat id or a text."""
    backend, principal, q = _backend(request), session_of(request).principal, request.query
    bot = checked_bot(request, q.get("bot", ""))
    query = q.get("q", "").strip()
    if not query:
        raise Refused(HTTPStatus.BAD_REQUEST, "INVALID_ARGUMENT", "q: say what to search for")
    asked = q.get("kind", "")
    if asked not in ("", "chat", "text"):
        raise Refused(HTTPStatus.BAD_REQUEST, "INVALID_ARGUMENT", "kind must be chat or text")
    kind = asked or ("chat" if is_chat_id(query) else "text")
    page = pb.SearchJobsRequest(bot=bot, page_size=_page_size(request))
    page.page_token = q.get("page_token", "")
    if kind == "chat":
        page.chat_id = query
    else:
        page.text = query
    job = keyed = None
    if not page.page_token:
        key = pb.SearchJobsRequest(bot=bot, idempotency_key=query, page_size=1)
        by_key = _optional(backend.call(backend.stub.SearchJobs, key))
        if JOB_ID.fullmatch(query) and principal.may_use(bot_of(query)):
            by_id = _optional(backend.call(backend.stub.GetJob, pb.GetJobRequest(job_id=query)))
            job, keyed = await asyncio.gather(by_id, by_key)
        else:
            keyed = await by_key
    # A query that named a job by its id or key does not also scan texts (the costliest
    # search: up to 5,000 jobs a call), unless asked to (kind=text).
    found = job is not None or bool(keyed and keyed.jobs)
    text_skipped = kind == "text" and not asked and found
    results = (
        pb.SearchJobsResponse()
        if text_skipped
        else await backend.call(backend.stub.SearchJobs, page)
    )
    return render.json(
        {
            "query": query,
            "kind": kind,
            "job": render.message_json(job.job) if job is not None else None,
            "by_key": render.message_json(keyed.jobs[0]) if keyed and keyed.jobs else None,
            "results": render.message_json(results),
            "text_skipped": text_skipped,
        }
    )


async def job(request: web.Request) -> web.Response:
    """The job and its timeline (every page of its events, up to a bound)."""
    backend = _backend(request)
    job_id = request.match_info["job_id"]
    _job_bot(request, job_id)
    found, events = await asyncio.gather(
        backend.call(backend.stub.GetJob, pb.GetJobRequest(job_id=job_id)),
        _timeline(backend, job_id),
    )
    timeline, trimmed = events
    return render.json(
        {
            "job": render.message_json(found.job),
            "events": [render.message_json(e) for e in timeline],
            "events_trimmed": trimmed,
        }
    )


# A job's timeline on its page: a job retried many times has a few dozen events; this bound
# only keeps one with thousands from making a page of megabytes.
_TIMELINE_PAGES = 5


async def _timeline(backend: Backend, job_id: str) -> tuple[list[pb.Event], bool]:
    events: list[pb.Event] = []
    trimmed, token = False, ""
    for _ in range(_TIMELINE_PAGES):
        call = pb.ListJobEventsRequest(job_id=job_id, page_size=1000, page_token=token)
        try:
            page = await backend.call(backend.stub.ListJobEvents, call)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                break  # GetJob beside it answers for the job
            raise
        events.extend(page.events)
        trimmed = trimmed or page.events_trimmed
        token = page.next_page_token
        if not token:
            break
    return events, trimmed


async def suppressed(request: web.Request) -> web.Response:
    backend, q = _backend(request), request.query
    call = pb.ListSuppressedChatsRequest(
        bot=checked_bot(request, q.get("bot", "")),
        page_size=_page_size(request),
        page_token=q.get("page_token", ""),
    )
    answer = await backend.call(backend.stub.ListSuppressedChats, call)
    return render.json(render.message_json(answer))


async def simulator(request: web.Request) -> web.Response:
    """What the sandbox's Bot API simulator received, newest first."""
    backend = _backend(request)
    if not backend.sandbox_url or backend.http is None:
        raise Refused(HTTPStatus.NOT_FOUND, "NOT_FOUND", "the gateway runs no simulator")
    params = {}
    if chat_id := request.query.get("chat_id", ""):
        params["chat_id"] = chat_id
    async with backend.http.get(backend.sandbox_url + "/_sim/messages", params=params) as got:
        got.raise_for_status()
        messages = await got.json()
    return render.json({"messages": messages[::-1][:_SIMULATOR_LIMIT]})


async def _job_change(request: web.Request, rpc: str, call: Message) -> web.Response:
    """RetryJob or CancelJob of the path's job, for a session that may act."""
    _may_act(request)
    _job_bot(request, request.match_info["job_id"])
    backend = _backend(request)
    answer = await backend.call(getattr(backend.stub, rpc), call)
    return render.json(render.message_json(answer))


async def retry(request: web.Request) -> web.Response:
    job_id = request.match_info["job_id"]
    return await _job_change(request, "RetryJob", pb.RetryJobRequest(job_id=job_id))


async def cancel(request: web.Request) -> web.Response:
    job_id = request.match_info["job_id"]
    return await _job_change(request, "CancelJob", pb.CancelJobRequest(job_id=job_id))


async def bulk(request: web.Request) -> web.Response:
    """RetryJobs or CancelJobs over a filter (the page counts first: validate_only)."""
    _may_act(request)
    backend, body = _backend(request), await json_object(request)
    action = text_field(body, "action")
    validate_only = body.get("validate_only", False)
    if not isinstance(validate_only, bool):
        raise Refused(
            HTTPStatus.BAD_REQUEST, "INVALID_ARGUMENT", "validate_only must be true or false"
        )
    selected = pb.JobFilter(
        bot=checked_bot(request, text_field(body, "bot")),
        state=_state(text_field(body, "state")),  # type: ignore[arg-type]
        chat_id=text_field(body, "chat_id"),
    )
    if action == "retry":
        call: Message = pb.RetryJobsRequest(filter=selected, validate_only=validate_only)
        answer = await backend.call(backend.stub.RetryJobs, call)
    elif action == "cancel":
        call = pb.CancelJobsRequest(filter=selected, validate_only=validate_only)
        answer = await backend.call(backend.stub.CancelJobs, call)
    else:
        raise Refused(HTTPStatus.BAD_REQUEST, "INVALID_ARGUMENT", "action must be retry or cancel")
    return render.json(render.message_json(answer))


async def unsuppress(request: web.Request) -> web.Response:
    _may_act(request)
    backend, body = _backend(request), await json_object(request)
    call = pb.UnsuppressChatRequest(
        bot=checked_bot(request, text_field(body, "bot")), chat_id=text_field(body, "chat_id")
    )
    answer = await backend.call(backend.stub.UnsuppressChat, call)
    return render.json(render.message_json(answer))


def principal_bots(backend: Backend, principal: Principal) -> list[str]:
    """The bots a session may use, in the gateway's order."""
    return [b for b in backend.bots if principal.may_use(b)]


def add_api_routes(app: web.Application, backend: Backend) -> None:
    """The endpoints that need a session (the server's middleware checks it first)."""
    app[BACKEND_KEY] = backend
    app.router.add_get("/api/overview", overview)
    app.router.add_get("/api/throughput", throughput)
    app.router.add_get("/api/jobs", jobs)
    app.router.add_get("/api/search", search)
    app.router.add_get("/api/jobs/{job_id}", job)
    app.router.add_get("/api/suppressed", suppressed)
    app.router.add_get("/api/simulator", simulator)
    app.router.add_post("/api/jobs/{job_id}/retry", retry)
    app.router.add_post("/api/jobs/{job_id}/cancel", cancel)
    app.router.add_post("/api/bulk", bulk)
    app.router.add_post("/api/suppressed/unsuppress", unsuppress)

"""Steps every chat-addressed Bot API method takes, in the order the gateway's tests rely on.

Token and latency are checked by the dispatcher; then :func:`open_request` (storm 429,
random 5xx, blocked / rate-limited / missing / migrated chat, a scripted odd answer that is
not a delivery, the chat_id), the method's own validation, :func:`admit` (the rate
windows), and the method's effect, answered by :func:`finish` (or a scripted odd answer
that is a delivery).
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

from aiohttp import web

from notigate.simulator.answers import ChatAnswer
from notigate.simulator.messages import message_base
from notigate.simulator.state import CHAT_NOT_FOUND, Fault, SimulatorState, too_many_requests
from notigate.simulator.wire import ChatRef, error_response, ok_response, parse_chat

__all__ = ["Target", "admit", "fail", "finish", "new_message", "open_request", "truthy"]


def truthy(value: Any) -> bool:
    """A Bot API boolean parameter's value."""
    return value is True or value == 1 or value == "true"


def fail(
    state: SimulatorState, method: str, chat_id: str | None, now: float, fault: Fault
) -> web.Response:
    """Record and answer an error."""
    state.record(method, chat_id, fault.status, now, fault.retry_after)
    return error_response(fault.status, fault.description, fault.parameters)


class Target(NamedTuple):
    """The chat a request addresses, and a scripted odd answer that still delivers."""

    chat_id: str
    chat: ChatRef
    answer: ChatAnswer | None


def open_request(
    state: SimulatorState, method: str, params: dict[str, Any], now: float
) -> Target | web.Response:
    """Scripted faults and the chat_id: the request's target, or the answer that ends it."""
    raw_chat = params.get("chat_id")
    chat_id = raw_chat if isinstance(raw_chat, str) else None
    fault = state.scripted_fault(chat_id, now)
    if fault is not None:
        return fail(state, method, chat_id, now, fault)
    answer = state.scripted_answer(chat_id)
    if answer is not None and not answer.deliver:
        state.record(method, chat_id, answer.status, now)
        return answer.response()
    if raw_chat is not None and chat_id is None:
        return fail(state, method, None, now, Fault(400, CHAT_NOT_FOUND))
    if not chat_id:
        return fail(state, method, chat_id, now, Fault(400, "Bad Request: chat_id is empty"))
    chat = parse_chat(chat_id)
    if chat is None:
        return fail(state, method, chat_id, now, Fault(400, CHAT_NOT_FOUND))
    return Target(chat_id, chat, answer)


def admit(
    state: SimulatorState,
    token: str,
    method: str,
    target: Target,
    params: dict[str, Any],
    now: float,
    count: int = 1,
) -> web.Response | None:
    """Take ``count`` slots of the rate windows, or answer 429 (None: admitted)."""
    config = state.config
    if not config.enforce_limits:
        return None
    wait = state.limiter.try_acquire(
        config,
        token=token,
        chat_key=target.chat.key,
        private=target.chat.private,
        paid=truthy(params.get("allow_paid_broadcast")),
        now=now,
        count=count,
    )
    if wait > 0.0:
        return fail(state, method, target.chat_id, now, too_many_requests(wait))
    return None


def new_message(
    state: SimulatorState, token: str, chat: ChatRef, params: dict[str, Any], wall: float
) -> dict[str, Any]:
    """A Message object with a fresh id: sender, chat, date and topic."""
    message_id = state.next_message_id(chat.key)
    return message_base(state.bot_user(token), chat, params, message_id, wall)


def finish(target: Target, result: Any) -> web.Response:
    """The success answer, or the scripted odd one that still delivered."""
    if target.answer is not None:
        return target.answer.response()
    return ok_response(result)


def now_monotonic() -> float:
    """The clock rate windows and request records use."""
    return time.monotonic()

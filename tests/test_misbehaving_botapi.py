"""A Bot API that misbehaves: odd answer shapes, error envelopes under 200, long flood
waits of a few chats versus a flood across the bot. Real simulator over HTTP, real Valkey."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from notigate.config import ConfigError, from_env
from notigate.embedded import EmbeddedValkey
from notigate.sender import (
    Delivered,
    Migrated,
    Outcome,
    PermanentError,
    RateLimited,
    TelegramSender,
    TransientError,
    Unauthorized,
    Unreachable,
)
from notigate.simulator import BotApiSimulator, SimulatorConfig
from notigate.simulator.answers import ChatAnswer, answer_shape
from notigate_client import pb
from tests.conftest import (
    TOKEN,
    Stub,
    gateway_settings,
    job_state,
    running_gateway,
    wait_for,
    wait_state,
)
from tests.test_metrics import scrape, value


@pytest.fixture(scope="module")
async def _sim_server() -> AsyncIterator[BotApiSimulator]:
    sim = BotApiSimulator(tokens=[TOKEN], config=SimulatorConfig())
    await sim.start(host="127.0.0.1", port=0)
    yield sim
    await sim.stop()


@pytest.fixture
async def _sender(_sim: BotApiSimulator) -> AsyncIterator[TelegramSender]:
    sender = TelegramSender(TOKEN, _sim.base_url, pool_size=4)
    await sender.start()
    yield sender
    await sender.close()


def _raw(status: int, body: Any, deliver: bool = False) -> ChatAnswer:
    text = body if isinstance(body, bytes) else json.dumps(body).encode()
    return ChatAnswer(status, text, deliver=deliver)


_RETRY_5 = "Too Many Requests: retry after 5"
# Longer retry_after values are taken as this (a week): nothing plausible asks for more.
_MAX_RETRY_AFTER_S = 7 * 24 * 3600
_NO_DESCRIPTION_400 = PermanentError("Bad Request (error_code 400, no description)")

# (scripted answer, expected outcome, whether Telegram sent the message)
_SHAPES: dict[str, tuple[ChatAnswer, Outcome, bool]] = {
    "ok without message_id": (answer_shape("no_message_id"), Delivered(0), True),
    "result true": (answer_shape("result_true"), Delivered(0), True),
    "cut off after ok": (answer_shape("truncated"), Delivered(0), True),
    "200 error_code 400": (answer_shape("error_in_200"), _NO_DESCRIPTION_400, False),
    "200 error_code 400 described": (
        answer_shape("error_in_200", description="Bad Request: chat not found"),
        Unreachable("Bad Request: chat not found"),
        False,
    ),
    "200 error_code 403": (
        answer_shape("error_in_200", error_code=403),
        Unreachable("Forbidden (error_code 403, no description)"),
        False,
    ),
    "200 error_code 401": (
        answer_shape("error_in_200", error_code=401),
        Unauthorized("Unauthorized (error_code 401, no description)"),
        False,
    ),
    "200 error_code 404": (
        answer_shape("error_in_200", error_code=404),
        Unauthorized("Not Found (error_code 404, no description)"),
        False,
    ),
    "200 error_code 502": (
        answer_shape("error_in_200", error_code=502),
        TransientError("Bad Gateway (error_code 502, no description)"),
        False,
    ),
    "200 error_code 429 retry_after": (
        _raw(200, {"ok": False, "error_code": 429, "parameters": {"retry_after": 7}}),
        RateLimited(7.0),
        False,
    ),
    "200 migrated": (
        _raw(200, {"ok": False, "error_code": 400, "parameters": {"migrate_to_chat_id": -1005}}),
        Migrated("-1005"),
        False,
    ),
    "400 without description": (answer_shape("no_description"), _NO_DESCRIPTION_400, False),
    "413 for a file over the limit": (
        _raw(413, {"ok": False, "error_code": 413, "description": "Request Entity Too Large"}),
        PermanentError("Request Entity Too Large: the file is over Telegram's size limit"),
        False,
    ),
    "error_code wins over HTTP 502": (
        _raw(502, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}),
        Unreachable("Bad Request: chat not found"),
        False,
    ),
    "429 wait only in the description": (
        _raw(
            429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 5"}
        ),
        RateLimited(5.0),
        False,
    ),
    "absurd retry_after": (
        _raw(429, {"ok": False, "error_code": 429, "parameters": {"retry_after": 1e300}}),
        RateLimited(float(_MAX_RETRY_AFTER_S)),
        False,
    ),
    "ok false without error_code": (
        _raw(200, {"ok": False}),
        TransientError("Bot API error without an error_code (HTTP 200): no description"),
        False,
    ),
    "401 html page": (
        answer_shape("non_json", status=401),
        Unauthorized(
            "Unauthorized (HTTP 401, not a Bot API answer: '<html><body><h1>502 Bad Gateway"
            "</h1> <p>upstream gone</p></body></html>')"
        ),
        False,
    ),
}


@pytest.mark.parametrize("case", list(_SHAPES))
async def test_every_answer_shape_is_classified(
    _sim: BotApiSimulator, _sender: TelegramSender, case: str
) -> None:
    answer, expected, sent = _SHAPES[case]
    _sim.script_answer("42", answer)
    outcome = await _sender.send(pb.SendRequest(chat_id="42", text="hi"), "42")
    assert outcome == expected
    assert len(_sim.messages) == (1 if sent else 0)


@pytest.mark.parametrize(
    "answer",
    [
        answer_shape("non_json"),
        _raw(200, b""),
        _raw(200, [1, 2]),
        _raw(200, {"result": {"message_id": 5}}),
        _raw(502, b"Bad Gateway"),
    ],
)
async def test_unreadable_answers_are_transient(
    _sim: BotApiSimulator, _sender: TelegramSender, answer: ChatAnswer
) -> None:
    _sim.script_answer("42", answer)
    outcome = await _sender.send(pb.SendRequest(chat_id="42", text="hi"), "42")
    assert isinstance(outcome, TransientError)
    assert "HTTP" in outcome.description and TOKEN not in outcome.description


async def test_simulator_scripts_answers_over_http(_sim: BotApiSimulator) -> None:
    async with aiohttp.ClientSession() as http:

        async def post(path: str, payload: dict[str, Any]) -> tuple[int, Any]:
            async with http.post(f"{_sim.base_url}{path}", json=payload) as resp:
                return resp.status, await resp.json(content_type=None)

        assert await post("/_sim/answer", {"chat_id": "7", "shape": "nope"}) == (
            400,
            {"error": await _error_text("nope")},
        )
        status, _ = await post("/_sim/answer", {"chat_id": "7", "shape": "error_in_200"})
        assert status == 200
        status, body = await post(f"/bot{TOKEN}/sendMessage", {"chat_id": "7", "text": "x"})
        assert (status, body) == (200, {"ok": False, "error_code": 400})
        status, _ = await post(
            "/_sim/answer", {"chat_id": "8", "status": 200, "body": "{}", "deliver": True}
        )
        assert status == 200
        assert await post(f"/bot{TOKEN}/sendMessage", {"chat_id": "8", "text": "x"}) == (200, {})
        assert [m.chat_id for m in _sim.messages] == ["8"]
        status, _ = await post("/_sim/rate_limit_chat", {"chat_id": "9", "retry_after": 3600})
        assert status == 200
        status, body = await post(f"/bot{TOKEN}/sendMessage", {"chat_id": "9", "text": "x"})
        assert status == 429 and body["parameters"] == {"retry_after": 3600}
        assert (await post("/_sim/rate_limit_chat", {"chat_id": "9", "retry_after": 0}))[0] == 400
        assert (await post("/_sim/unblock", {"chat_id": "9"}))[1]["was_blocked"] is True
        status, _ = await post(f"/bot{TOKEN}/sendMessage", {"chat_id": "9", "text": "x"})
        assert status == 200


async def _error_text(shape: str) -> str:
    try:
        answer_shape(shape)
    except ValueError as exc:
        return str(exc)
    raise AssertionError("shape is known")


# -- through the gateway ----------------------------------------------------------------


def _requests_to(sim: BotApiSimulator, chat_id: str) -> int:
    return sum(1 for r in sim.requests if r.chat_id == chat_id)


@pytest.mark.parametrize("shape", ["no_message_id", "result_true"])
async def test_an_ok_answer_without_message_id_is_delivered_once(
    redis: Redis,
    valkey: EmbeddedValkey,
    simulator: BotApiSimulator,
    caplog: pytest.LogCaptureFixture,
    shape: str,
) -> None:
    simulator.script_answer("301", answer_shape(shape))
    # A short lease: were the delivery task to die, the job would be resent within seconds.
    settings = gateway_settings(valkey, simulator, lease_ms=1_000)
    with caplog.at_level(logging.WARNING, logger="notigate.sender"):
        async with running_gateway(settings) as (_, stub):
            reply = await stub.Send(pb.SendRequest(chat_id="301", text="once"))
            job = await wait_state(stub, reply.job_id, pb.JOB_STATE_COMPLETED)
    assert job.telegram_message_id == 0 and job.attempts == 0
    assert [m.chat_id for m in simulator.messages] == ["301"]
    assert _requests_to(simulator, "301") == 1
    assert any("without a usable message_id" in r.getMessage() for r in caplog.records)


async def test_an_error_envelope_under_200_is_classified_by_error_code(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    simulator.script_answer("302", answer_shape("error_in_200"))
    async with running_gateway(gateway_settings(valkey, simulator)) as (_, stub):
        reply = await stub.Send(pb.SendRequest(chat_id="302", text="bad"))
        job = await wait_state(stub, reply.job_id, pb.JOB_STATE_FAILED)
    assert job.last_error == "Bad Request (error_code 400, no description)"
    assert _requests_to(simulator, "302") == 1


async def _stats(stub: Stub) -> pb.GetStatsResponse:
    return await stub.GetStats(pb.GetStatsRequest(), timeout=10)


def _pause_warnings(stats: pb.GetStatsResponse) -> list[str]:
    return [w for w in stats.warnings if w.startswith("the whole bot is paused")]


async def test_long_flood_waits_of_a_few_chats_do_not_stop_the_others(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    slow = ["501", "502", "503"]
    for chat in slow:
        simulator.rate_limit_chat(chat, retry_after=3600)
    async with running_gateway(gateway_settings(valkey, simulator)) as (_, stub):
        held = [(await stub.Send(pb.SendRequest(chat_id=c, text="x"))).job_id for c in slow]

        async def all_limited() -> bool:
            return all(_requests_to(simulator, c) == 1 for c in slow)

        await wait_for(all_limited)
        others = [
            (await stub.Send(pb.SendRequest(chat_id=str(600 + i), text="y"))).job_id
            for i in range(5)
        ]
        for job_id in others:
            await wait_state(stub, job_id, pb.JOB_STATE_COMPLETED)
        stats = await _stats(stub)
        states = [await job_state(stub, job_id) for job_id in held]
    assert not stats.HasField("paused_until")
    assert _pause_warnings(stats) == []
    # Each slow chat waits its own hour: one request, no resend, no attempt used.
    assert states == [pb.JOB_STATE_WAITING] * 3
    assert all(_requests_to(simulator, c) == 1 for c in slow)


async def test_a_bot_wide_flood_pauses_the_bot_and_says_so(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    simulator.rate_limit_storm(seconds=600.0, retry_after=30)
    settings = gateway_settings(valkey, simulator, metrics_listen="127.0.0.1:0")
    async with running_gateway(settings) as (gw, stub):
        for chat in ("701", "702", "703"):
            await stub.Send(pb.SendRequest(chat_id=chat, text="z"))

        async def paused() -> bool:
            return bool(_pause_warnings(await _stats(stub)))

        await wait_for(paused)
        stats = await _stats(stub)

        async def gauge_up() -> bool:
            return value(await scrape(gw.metrics_port), "notigate_bot_paused") == 1

        await wait_for(gauge_up)
        got = await scrape(gw.metrics_port)
    until_s = stats.paused_until.ToMilliseconds() / 1000
    assert time.time() < until_s <= time.time() + 30
    [warning] = _pause_warnings(stats)
    assert stats.paused_until.ToJsonString() in warning
    assert "429 from 3 chats" in warning and "the bot-wide limit" in warning
    assert value(got, "notigate_bot_paused_until_seconds") == pytest.approx(until_s, abs=1)


async def test_a_flood_of_long_waits_pauses_the_bot_only_up_to_the_cap(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    simulator.rate_limit_storm(seconds=600.0, retry_after=3600)
    flooded = [str(800 + i) for i in range(4)]
    settings = gateway_settings(
        valkey, simulator, bot_pause_max_ms=1_500, bot_pause_flood_chats=len(flooded)
    )
    async with running_gateway(settings) as (_, stub):
        held = [(await stub.Send(pb.SendRequest(chat_id=c, text="f"))).job_id for c in flooded]

        async def paused() -> bool:
            return bool(_pause_warnings(await _stats(stub)))

        await wait_for(paused)
        stats = await _stats(stub)
        simulator.reset()  # the flood is over
        later = await stub.Send(pb.SendRequest(chat_id="900", text="after"))
        await wait_state(stub, later.job_id, pb.JOB_STATE_COMPLETED)
        states = [await job_state(stub, job_id) for job_id in held]
    until_s = stats.paused_until.ToMilliseconds() / 1000
    assert until_s <= time.time() + 1.5
    assert "a flood across the bot; pause capped at 1500 ms" in _pause_warnings(stats)[0]
    # The flooded chats still wait their own retry_after in full.
    assert states == [pb.JOB_STATE_WAITING] * len(flooded)


def test_the_bot_pause_cap_is_a_setting() -> None:
    assert from_env({}).bot_pause_max_ms == 60_000
    assert from_env({"NOTIGATE_BOT_PAUSE_MAX_MS": "5000"}).bot_pause_max_ms == 5_000
    with pytest.raises(ConfigError):
        from_env({"NOTIGATE_BOT_PAUSE_MAX_MS": "0"})

"""Signed webhooks: every event in the configured states POSTed to a receiver (an aiohttp
server in the test), at least once, in order per job, across retries, restarts, a
second gateway and a kill -9; given up and counted past the max age or when trimmed
unread."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from aiohttp import web
from google.protobuf import json_format
from redis.asyncio import Redis

from notigate.app import Gateway
from notigate.config import Settings
from notigate.embedded import EmbeddedValkey
from notigate.queue import QueueKeys
from notigate.simulator import BotApiSimulator
from notigate.webhooks import WebhookKeys, sign, undeliverable_records, verify
from notigate.webhooks.policy import WebhookPolicy
from notigate.webhooks.scripts import WebhookScript, WebhookScripts
from notigate.webhooks.source import read
from notigate_client import pb
from tests.conftest import (
    Stub,
    bots_settings,
    bots_simulator,
    free_port,
    gateway_settings,
    running_gateway,
    wait_for,
)
from tests.script_headers import (
    assert_header_matches,
    assert_includes_close_over_nothing,
    assert_names_only_what_it_defines,
    lua_names,
)

SECRET = "s3cret-for-tests"
COMPLETED, FAILED = pb.JOB_STATE_COMPLETED, pb.JOB_STATE_FAILED
KEYS = WebhookKeys.for_queue("default")


# -- the receiver -----------------------------------------------------------------------


@dataclass
class Received:
    """One request as the receiver saw it, and its answer (0 while held)."""

    event_id: str
    timestamp: str
    signature: str
    content_type: str
    body: bytes
    status: int = 0

    @property
    def event(self) -> pb.Event:
        return json_format.Parse(self.body, pb.Event())

    @property
    def acknowledged(self) -> bool:
        return 200 <= self.status < 300

    def verifies(self, secret: str = SECRET) -> bool:
        return verify(secret, self.body, self.timestamp, self.signature)


class Receiver:
    """A webhook receiver on 127.0.0.1: records every request in arrival order and
    answers what ``answer`` says (200 unless told); while ``gate`` is set and not open,
    requests wait for it."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.answer: Callable[[Received], int] = lambda _: 200
        self.gate: asyncio.Event | None = None
        self.held = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/hook"

    async def stop(self) -> None:
        if self.gate is not None:
            self.gate.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        got = Received(
            event_id=request.headers.get("X-Notigate-Event-Id", ""),
            timestamp=request.headers.get("X-Notigate-Timestamp", ""),
            signature=request.headers.get("X-Notigate-Signature", ""),
            content_type=request.headers.get("Content-Type", ""),
            body=await request.read(),
        )
        self.requests.append(got)
        if self.gate is not None:
            self.held += 1
            try:
                await self.gate.wait()
            finally:
                self.held -= 1
        got.status = self.answer(got)
        return web.Response(status=got.status)

    def acknowledged(self) -> list[Received]:
        return [r for r in self.requests if r.acknowledged]

    def fail_first(self, n: int, status: int = 500) -> None:
        """Answer ``status`` to the first ``n`` requests of each event, then 200."""
        seen: Counter[str] = Counter()

        def answer(r: Received) -> int:
            seen[r.event_id] += 1
            return status if seen[r.event_id] <= n else 200

        self.answer = answer


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


def hook_settings(
    valkey: EmbeddedValkey, sim: BotApiSimulator, receiver: Receiver, **overrides: object
) -> Settings:
    return gateway_settings(
        valkey, sim, webhook_url=receiver.url, webhook_secret=SECRET, **overrides
    )


def msg(chat: str = "42", **fields: object) -> pb.SendRequest:
    return pb.SendRequest(chat_id=chat, text="hi", **fields)  # type: ignore[arg-type]


async def send(stub: Stub, chats: list[str]) -> list[str]:
    reply = await stub.SendBatch(pb.SendBatchRequest(messages=[msg(c) for c in chats]))
    return [r.job_id for r in reply.results]


async def webhook_stats(stub: Stub) -> pb.WebhookStats:
    reply = await stub.GetStats(pb.GetStatsRequest(), timeout=10)
    assert reply.HasField("webhooks")
    return reply.webhooks


async def stream_events(redis: Redis, states: set[int]) -> list[pb.Event]:
    """Every event of the stream in ``states``, oldest first (what should be posted)."""
    from notigate.events.entries import event_of_entry

    raw = await redis.xrange(QueueKeys.for_queue("default").events, "-", "+")
    events = [event_of_entry(i, f) for i, f in raw]
    return [e for e in events if e.state in states]


async def acknowledged_all(receiver: Receiver, cursors: set[str]) -> bool:
    return {r.event_id for r in receiver.acknowledged()} >= cursors


def sample(gw: Gateway, name: str) -> float:
    return gw.metrics.registry.get_sample_value(name, {"bot": "default"}) or 0.0


# -- signing ------------------------------------------------------------------------------


def test_sign_and_verify_round_trip() -> None:
    body = b'{"cursor":"1-0"}'
    signature = sign(SECRET, 1_700_000_000, body)
    assert re.fullmatch(r"v1=[0-9a-f]{64}", signature)
    at = 1_700_000_000.5
    assert verify(SECRET, body, "1700000000", signature, now=at)
    assert verify(SECRET, body, "1700000000", f"v1=00, {signature}", now=at)
    assert not verify("other", body, "1700000000", signature, now=at)
    assert not verify(SECRET, body + b" ", "1700000000", signature, now=at)
    assert not verify(SECRET, body, "1700000001", signature, now=at)
    assert not verify(SECRET, body, "1700000000", signature, now=at + 301)
    assert not verify(SECRET, body, "soon", signature, now=at)


# -- delivery -----------------------------------------------------------------------------


async def test_a_posted_event_is_signed_over_the_body_and_timestamp_as_received(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator, receiver: Receiver
) -> None:
    async with running_gateway(hook_settings(valkey, simulator, receiver)) as (_, stub):
        job_id = (await stub.Send(msg("42"))).job_id
        await wait_for(lambda: _count_at_least(receiver.acknowledged(), 1))
        got = receiver.acknowledged()[0]
        assert got.content_type == "application/json"
        assert got.verifies()
        assert not got.verifies("another secret")
        assert not verify(SECRET, got.body.replace(b"42", b"43"), got.timestamp, got.signature)
        event = got.event
        assert (event.job_id, event.state, event.chat_id) == (job_id, COMPLETED, "42")
        assert event.cursor == got.event_id
        assert event.telegram_message_id != 0
        # The proto's JSON mapping, compact, with the proto's field names.
        assert (
            got.body
            == json_format.MessageToJson(
                event, preserving_proto_field_name=True, indent=None
            ).encode()
        )
        assert b"\n" not in got.body
        body = json.loads(got.body)
        assert body["state"] == "JOB_STATE_COMPLETED" and body["job_id"] == job_id
        assert body["time"].endswith("Z")
        stats = await webhook_stats(stub)
        await wait_for(lambda: _stats_are(stub, delivered=1, pending=0))
        assert stats.undeliverable == 0


async def test_only_the_wanted_states_are_posted(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator, receiver: Receiver
) -> None:
    async with running_gateway(hook_settings(valkey, simulator, receiver)) as (gw, stub):
        simulator.block_chat("13")
        good, bad = await send(stub, ["12", "13"])
        later = (await stub.Send(msg("14", delay={"seconds": 3600}))).job_id
        await stub.CancelJob(pb.CancelJobRequest(job_id=later))
        wanted = await _until_stream_has(redis, {COMPLETED, FAILED}, 2)
        await wait_for(lambda: acknowledged_all(receiver, {e.cursor for e in wanted}))
        await wait_for(lambda: _stats_are(stub, delivered=2, pending=0))
        posted = {(r.event.job_id, r.event.state) for r in receiver.requests}
        assert posted == {(good, COMPLETED), (bad, FAILED)}
        failed = next(r.event for r in receiver.requests if r.event.state == FAILED)
        assert failed.error == "Forbidden: bot was blocked by the user"
        assert sample(gw, "notigate_webhook_delivered_total") == 2
        assert sample(gw, "notigate_webhook_failures_total") == 0


async def test_a_failing_receiver_still_gets_every_event_once_in_order_per_job(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator, receiver: Receiver
) -> None:
    states = ("waiting", "active", "completed", "failed")
    settings = hook_settings(valkey, simulator, receiver, webhook_states=states)
    receiver.fail_first(1)
    async with running_gateway(settings) as (gw, stub):
        simulator.block_chat("23")
        ids = await send(stub, ["21", "22", "23", "24"])
        # waiting, active, completed (or failed) of each job
        expected = await _until_stream_has(
            redis, {pb.JOB_STATE_WAITING, pb.JOB_STATE_ACTIVE, COMPLETED, FAILED}, 3 * len(ids)
        )
        cursors = {e.cursor for e in expected}
        await wait_for(lambda: acknowledged_all(receiver, cursors), timeout_s=60)
        await wait_for(lambda: _stats_are(stub, delivered=len(cursors), pending=0))
        assert sample(gw, "notigate_webhook_failures_total") == len(cursors)

    acked = receiver.acknowledged()
    assert Counter(r.event_id for r in acked) == Counter(cursors)  # each once
    assert all(r.verifies() for r in acked)
    by_job: dict[str, list[str]] = defaultdict(list)
    for e in expected:
        by_job[e.job_id].append(e.cursor)
    assert set(by_job) == set(ids)
    order = [r.event_id for r in receiver.requests]
    for job_id, job_cursors in by_job.items():
        assert [r.event_id for r in acked if r.event.job_id == job_id] == job_cursors
        # A later event is not sent before the earlier one was acknowledged.
        for earlier, later in itertools.pairwise(job_cursors):
            ack_at = next(
                i
                for i, r in enumerate(receiver.requests)
                if r.event_id == earlier and r.acknowledged
            )
            assert order.index(later) > ack_at


async def test_two_gateways_share_the_work_without_sending_an_event_twice(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator, receiver: Receiver
) -> None:
    settings = hook_settings(
        valkey, simulator, receiver, webhook_concurrency=2, webhook_timeout_s=60
    )
    receiver.gate = asyncio.Event()
    async with running_gateway(settings) as (gw1, stub), running_gateway(settings) as (gw2, _):
        await send(stub, [str(300 + i) for i in range(8)])
        # Each gateway posts two at most: four held at once means both are posting.
        await wait_for(lambda: _held_at_least(receiver, 4))
        receiver.gate.set()
        expected = await _until_stream_has(redis, {COMPLETED}, 8)
        await wait_for(lambda: acknowledged_all(receiver, {e.cursor for e in expected}))
        await wait_for(lambda: _stats_are(stub, delivered=8, pending=0))
        shares = [sample(g, "notigate_webhook_delivered_total") for g in (gw1, gw2)]
    assert len(receiver.requests) == 8
    assert len({r.event_id for r in receiver.requests}) == 8
    assert sum(shares) == 8 and min(shares) >= 2


async def test_a_restart_during_retries_loses_nothing(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator, receiver: Receiver
) -> None:
    settings = hook_settings(valkey, simulator, receiver)
    receiver.answer = lambda _: 503
    async with running_gateway(settings) as (_, stub):
        await send(stub, ["31", "32", "33"])
        expected = await _until_stream_has(redis, {COMPLETED}, 3)
        cursors = {e.cursor for e in expected}
        await wait_for(lambda: _tried(receiver, cursors))
        assert (await webhook_stats(stub)).pending == 3
    receiver.answer = lambda _: 200
    async with running_gateway(settings) as (_, stub):
        await wait_for(lambda: acknowledged_all(receiver, cursors))
        await wait_for(lambda: _stats_are(stub, delivered=3, pending=0))
    assert Counter(r.event_id for r in receiver.acknowledged()) == Counter(cursors)


async def test_posts_unanswered_at_shutdown_are_sent_again_at_once(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator, receiver: Receiver
) -> None:
    # A long timeout (and so a long lease): only the release at shutdown makes them due
    # again within the test's patience.
    settings = hook_settings(
        valkey, simulator, receiver, webhook_timeout_s=100, shutdown_grace_s=0.2
    )
    receiver.gate = asyncio.Event()
    async with running_gateway(settings) as (_, stub):
        await send(stub, ["51", "52"])
        await wait_for(lambda: _held_at_least(receiver, 2))
    # What the held requests are answered now reaches nobody: not an acknowledgement.
    receiver.answer = lambda _: 503
    receiver.gate.set()
    await wait_for(lambda: _held_at_least(receiver, 0, exactly=True))
    receiver.gate = None
    receiver.answer = lambda _: 200
    expected = await _until_stream_has(redis, {COMPLETED}, 2)
    async with running_gateway(settings) as (_, stub):
        await wait_for(lambda: acknowledged_all(receiver, {e.cursor for e in expected}))
        await wait_for(lambda: _stats_are(stub, pending=0))


async def test_an_event_past_the_max_age_is_undeliverable_and_the_job_moves_on(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator, receiver: Receiver
) -> None:
    # 2 s: below what NOTIGATE_WEBHOOK_MAX_AGE accepts; the Gateway takes Settings as given.
    settings = hook_settings(
        valkey, simulator, receiver, webhook_max_age_s=2, webhook_states=("waiting", "completed")
    )
    # The job's first event (WAITING) is refused; its second is acknowledged when tried,
    # which is only once the first is given up, though it is that old by then too.
    receiver.answer = lambda r: 500 if r.event.state == pb.JOB_STATE_WAITING else 200
    async with running_gateway(settings) as (gw, stub):
        job_id = (await stub.Send(msg("41"))).job_id
        events = await _until_stream_has(redis, {pb.JOB_STATE_WAITING, COMPLETED}, 2)
        await wait_for(lambda: _stats_are(stub, undeliverable=1))
        await wait_for(lambda: acknowledged_all(receiver, {events[1].cursor}))
        await wait_for(lambda: _stats_are(stub, undeliverable=1, delivered=1, pending=0))
        stats = await webhook_stats(stub)
        assert not stats.HasField("oldest_pending_time")
        assert sample(gw, "notigate_webhook_undeliverable_total") == 1
    first = [r for r in receiver.requests if r.event_id == events[0].cursor]
    assert len(first) >= 2 and not any(r.acknowledged for r in first)
    (record,) = await undeliverable_records(redis, KEYS)
    assert record["cursor"] == events[0].cursor
    assert record["event"]["j"] == job_id and record["error"] == "HTTP 500"
    assert record["attempts"] == len(first)


async def test_entries_trimmed_before_they_were_read_are_counted_undeliverable(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator, receiver: Receiver
) -> None:
    hooked = hook_settings(valkey, simulator, receiver, events_max=1000)
    async with running_gateway(hooked):
        await wait_for(lambda: _joined(redis))
    plain = gateway_settings(valkey, simulator, events_max=1000)
    async with running_gateway(plain) as (_, stub):
        for _ in range(3):
            batch = [msg("9", delay={"seconds": 3600}) for _ in range(1000)]
            await stub.SendBatch(pb.SendBatchRequest(messages=batch))
    info = await redis.xinfo_stream(KEYS.events)
    read_before = int(await redis.hget(KEYS.state, "read") or 0)
    trimmed = info["entries-added"] - info["length"] - read_before
    assert trimmed > 0
    async with running_gateway(hooked) as (_, stub):
        await wait_for(lambda: _stats_are(stub, undeliverable=trimmed, pending=0))
    (record,) = await undeliverable_records(redis, KEYS)
    assert record["trimmed"] == trimmed
    assert record["before"] == info["first-entry"][0].decode()


async def _until_stream_has(redis: Redis, states: set[int], n: int) -> list[pb.Event]:
    found: list[pb.Event] = []

    async def enough() -> bool:
        nonlocal found
        found = await stream_events(redis, states)
        return len(found) >= n

    await wait_for(enough)
    return found


async def _stats_are(stub: Stub, **expected: int) -> bool:
    stats = await webhook_stats(stub)
    return all(getattr(stats, name) == value for name, value in expected.items())


async def _joined(redis: Redis) -> bool:
    return bool(await redis.hexists(KEYS.state, "read"))


async def _count_at_least(items: list[Received], n: int) -> bool:
    return len(items) >= n


async def _held_at_least(receiver: Receiver, n: int, *, exactly: bool = False) -> bool:
    return receiver.held == n if exactly else receiver.held >= n


async def _tried(receiver: Receiver, cursors: set[str]) -> bool:
    return {r.event_id for r in receiver.requests if r.status} >= cursors


# -- the scripts' headers -----------------------------------------------------------------

_POLICY = WebhookPolicy(wanted="cf", max_age_ms=1000, lease_ms=1000)
WRAPPERS = WebhookScripts.register(Redis(), KEYS, _POLICY).all()


def test_every_script_has_one_wrapper() -> None:
    assert sorted(w.name for w in WRAPPERS) == lua_names("notigate.webhooks")


@pytest.mark.parametrize("wrapper", WRAPPERS, ids=lambda w: w.name)
def test_keys_and_argv_match_the_header(wrapper: WebhookScript[object]) -> None:
    assert_header_matches(wrapper, read(f"{wrapper.name}.lua"), WebhookKeys)


@pytest.mark.parametrize("wrapper", WRAPPERS, ids=lambda w: w.name)
def test_scripts_name_only_defined_constants_and_configuration(
    wrapper: WebhookScript[object],
) -> None:
    assert_names_only_what_it_defines(wrapper, _POLICY.packed())


def test_includes_close_over_nothing() -> None:
    assert_includes_close_over_nothing("notigate.webhooks", ("prefix", "cfg"))


# -- kill -9 (fault injection) --------------------------------------------------------------


@pytest.mark.faults
async def test_kill_9_while_the_receiver_fails_loses_no_event(
    tmp_path: Path, simulator: BotApiSimulator, receiver: Receiver
) -> None:
    from tests.test_faults import GatewayProcess

    valkey = EmbeddedValkey(tmp_path / "valkey", port=free_port(), appendfsync="always")
    await valkey.start()
    redis = Redis.from_url(valkey.url)
    try:
        gw = GatewayProcess(
            valkey.url,
            simulator.base_url,
            tmp_path / "gw.log",
            NOTIGATE_WEBHOOK_URL=receiver.url,
            NOTIGATE_WEBHOOK_SECRET=SECRET,
            NOTIGATE_WEBHOOK_TIMEOUT_S="2",
            NOTIGATE_KEEP_COMPLETED="1000",
        )
        await gw.start()
        receiver.answer = lambda _: 500
        n = 60
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}") as ch:
            simulator.block_chat("2000")
            chats = ["2000" if i % 10 == 0 else str(2001 + i) for i in range(n)]
            await send(Stub(ch), chats)
        expected = await _until_stream_has(redis, {COMPLETED, FAILED}, n)
        cursors = {e.cursor for e in expected}
        await wait_for(lambda: _count_at_least(receiver.requests, 20), timeout_s=60)
        gw.kill()
        await gw.start()
        # Acknowledged from now on; killed again once some got through.
        receiver.answer = lambda _: 200
        await wait_for(lambda: _count_at_least(receiver.acknowledged(), 10), timeout_s=60)
        gw.kill()
        await gw.start()
        await wait_for(lambda: acknowledged_all(receiver, cursors), timeout_s=90)
        assert await gw.terminate() == 0
    finally:
        await redis.aclose()
        await valkey.stop()
    acked = receiver.acknowledged()
    per_event = Counter(r.event_id for r in acked)
    duplicates = sum(c - 1 for c in per_event.values())
    print(
        f"\nwebhook kill -9 x2: events={len(cursors)} requests={len(receiver.requests)} "
        f"acknowledged={len(acked)} duplicated={duplicates}"
    )
    assert set(per_event) == cursors
    assert all(r.verifies() for r in receiver.requests)
    # Only POSTs in flight at a kill may be sent again: at most the concurrency per kill.
    assert duplicates <= 2 * Settings().webhook_concurrency


async def test_several_bots_post_to_one_webhook_with_ids_unique_across_bots(
    redis: Redis, valkey: EmbeddedValkey, receiver: Receiver
) -> None:
    async with bots_simulator("default", "shop") as sim:
        settings = bots_settings(
            valkey, sim, ("default", "shop"), webhook_url=receiver.url, webhook_secret=SECRET
        )
        async with running_gateway(settings) as (_gw, stub):
            ids = [
                (await stub.Send(pb.SendRequest(chat_id="7", text="hi", bot=bot))).job_id
                for bot in ("default", "shop")
            ]

            async def both_completed() -> bool:
                done = {
                    r.event.job_id for r in receiver.acknowledged() if r.event.state == COMPLETED
                }
                return done >= set(ids)

            await wait_for(both_completed)
    events = {r.event.job_id: r for r in receiver.acknowledged() if r.event.state == COMPLETED}
    plain, shop = events[ids[0]], events[ids[1]]
    assert (plain.event.bot, shop.event.bot) == ("default", "shop")
    assert plain.event_id == plain.event.cursor
    assert shop.event_id == f"shop/{shop.event.cursor}"
    assert plain.verifies() and shop.verifies()

"""The clients' watch_events, wait_job and send(wait=True) against a real gateway, including
a gateway restart in the middle of a watch.

The blocking client runs in a thread: the gateway serves on the test's event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from notigate.app import Gateway
from notigate.config import Settings
from notigate.embedded import EmbeddedValkey
from notigate.queue import QueueKeys
from notigate.simulator import BotApiSimulator
from notigate_client import (
    AsyncNotificationClient,
    DeadlineExceededError,
    InvalidArgumentError,
    NotificationClient,
    WatchedEvent,
    pb,
)
from notigate_client.cli import main
from notigate_client.events import AsyncEventIterator, EventIterator
from tests.conftest import Stub, gateway_settings, running_gateway, wait_state

WAITING, ACTIVE, COMPLETED = pb.JOB_STATE_WAITING, pb.JOB_STATE_ACTIVE, pb.JOB_STATE_COMPLETED
DELAYED, FAILED = pb.JOB_STATE_DELAYED, pb.JOB_STATE_FAILED
DELIVERED = [WAITING, ACTIVE, COMPLETED]


def target(gw: Gateway) -> str:
    return f"127.0.0.1:{gw.port}"


def msg(chat: str, **fields: Any) -> pb.SendRequest:
    return pb.SendRequest(chat_id=chat, text="hi", **fields)


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(argv), {})
    out = capsys.readouterr()
    return code, out.out, out.err


async def take(events: AsyncEventIterator, count: int) -> list[WatchedEvent]:
    out: list[WatchedEvent] = []
    async with asyncio.timeout(30):  # a hang guard, not a speed requirement
        async for watched in events:
            out.append(watched)
            if len(out) == count:
                break
    return out


def take_sync(events: EventIterator, count: int) -> list[WatchedEvent]:
    out: list[WatchedEvent] = []
    for watched in events:
        out.append(watched)
        if len(out) == count:
            break
    return out


# The default queue's event stream.
EVENTS = QueueKeys.for_queue(Settings().queue_name).events


def events_position(newest: list[Any]) -> str:
    return str(newest[0][0].decode()) if newest else "0-0"


async def stream_cursors(redis: Redis, after: str) -> list[str]:
    """Every cursor the stream holds after ``after``: what a watcher must have seen."""
    return [entry_id.decode() for entry_id, _ in await redis.xrange(EVENTS, f"({after}", "+")]


async def test_every_state_change_of_a_job_is_observed_in_order(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    gw, _ = gateway
    async with (
        AsyncNotificationClient(target(gw)) as client,
        client.watch_events() as events,
    ):
        start = await events.connect()
        job_id = (await client.send("42", "hi")).job_id
        got = await take(events, 3)
    assert [(w.job_id, w.state) for w in got] == [(job_id, s) for s in DELIVERED]
    assert not any(w.gap for w in got)
    assert len({w.cursor for w in got}) == 3 and start not in {w.cursor for w in got}
    job = await wait_state(gateway[1], job_id, COMPLETED)
    assert got[-1].event.telegram_message_id == job.telegram_message_id != 0
    assert events.cursor == got[-1].cursor


async def test_blocking_client_filters_by_chat_and_state_names(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    gw, _ = gateway

    def watch() -> list[WatchedEvent]:
        with (
            NotificationClient(target(gw)) as client,
            client.watch_events(chat_id=8, states=["completed", "JOB_STATE_WAITING"]) as events,
        ):
            events.connect()
            client.send("7", "not this chat")
            wanted = client.send(8, "this one").job_id
            got = take_sync(events, 2)
            assert {w.job_id for w in got} == {wanted}
            return got

    got = await asyncio.to_thread(watch)
    assert [w.state for w in got] == [WAITING, COMPLETED]
    assert all(w.event.chat_id == "8" for w in got)


async def test_resuming_from_a_cursor_gives_exactly_the_events_after_it(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    gw, _ = gateway
    async with AsyncNotificationClient(target(gw)) as client:
        sent = await client.send_batch([msg(str(100 + i)) for i in range(5)])
        for reply in sent:
            await client.wait_job(reply.job_id, timeout=30)
        async with client.watch_events(start_cursor="0-0") as events:
            everything = await take(events, 15)
        middle = everything[6].cursor
        async with client.watch_events(start_cursor=middle) as events:
            rest = await take(events, 8)
    assert [w.event for w in rest] == [w.event for w in everything[7:]]


class _Collector:
    """Iterates a watch in the background until ``done`` holds for the events seen."""

    def __init__(self, done: Callable[[list[WatchedEvent]], bool]) -> None:
        self.seen: list[WatchedEvent] = []
        self.done = done
        self.finished = asyncio.Event()
        self.error: BaseException | None = None


@pytest.mark.parametrize("flavour", ["blocking", "asyncio"])
async def test_a_watch_goes_on_across_a_gateway_restart_with_no_loss_or_duplicate(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator, flavour: str
) -> None:
    settings = gateway_settings(valkey, simulator, shutdown_grace_s=0.5)
    first = Gateway(settings)
    await first.__aenter__()
    address = target(first)
    jobs: dict[str, str] = {}
    last_job: list[str] = []

    def done(seen: list[WatchedEvent]) -> bool:
        return bool(last_job) and any((w.job_id, w.state) == (last_job[0], COMPLETED) for w in seen)

    collector = _Collector(done)
    loop = asyncio.get_running_loop()
    connected = asyncio.Event()

    def blocking() -> None:
        try:
            with (
                NotificationClient(address) as client,
                client.watch_events(reconnect_for_s=None) as events,
            ):
                events.connect()
                loop.call_soon_threadsafe(connected.set)
                for watched in events:
                    collector.seen.append(watched)
                    if collector.done(collector.seen):
                        break
        except BaseException as exc:  # surfaced by the test below
            collector.error = exc
        loop.call_soon_threadsafe(collector.finished.set)

    async def asynchronous() -> None:
        try:
            async with (
                AsyncNotificationClient(address) as client,
                client.watch_events(reconnect_for_s=None) as events,
            ):
                await events.connect()
                connected.set()
                async for watched in events:
                    collector.seen.append(watched)
                    if collector.done(collector.seen):
                        break
        except BaseException as exc:
            collector.error = exc
        collector.finished.set()

    if flavour == "blocking":
        thread = threading.Thread(target=blocking, daemon=True)
        thread.start()
    else:
        task = asyncio.create_task(asynchronous())
    async with asyncio.timeout(30):
        await connected.wait()
    start = events_position(await redis.xrevrange(EVENTS, count=1))

    async with AsyncNotificationClient(address) as client:
        jobs["before"] = (await client.send("31", "before")).job_id
        await client.wait_job(jobs["before"], timeout=30)
    await first.__aexit__(None, None, None)  # the watch is now reconnecting

    # Events while no gateway is at the watcher's address: another gateway on the same
    # Valkey delivers two messages.
    other = dataclasses.replace(settings, listen="127.0.0.1:0")
    async with running_gateway(other) as (_, stub):
        for name in ("while-down-1", "while-down-2"):
            jobs[name] = (await stub.Send(msg("32"))).job_id
        for name in ("while-down-1", "while-down-2"):
            await wait_state(stub, jobs[name], COMPLETED)

    again = dataclasses.replace(settings, listen=address)
    async with (
        Gateway(again) as second,
        # Until gRPC tries the address again it fails calls at once: retry past that.
        AsyncNotificationClient(target(second), retries=10) as client,
    ):
        jobs["after"] = (await client.send("33", "after")).job_id
        last_job.append(jobs["after"])
        await client.wait_job(jobs["after"], timeout=30)
        async with asyncio.timeout(60):
            await collector.finished.wait()
    if flavour == "blocking":
        thread.join(timeout=30)
    else:
        await task
    assert collector.error is None, collector.error
    seen = collector.seen
    # Exactly the stream's entries after the start: none lost, none twice, in order.
    assert [w.cursor for w in seen] == await stream_cursors(redis, start)
    for job_id in jobs.values():
        assert [w.state for w in seen if w.job_id == job_id] == DELIVERED
    assert not any(w.gap for w in seen)


async def test_a_trimmed_cursor_is_reported_as_a_gap(
    redis: Redis,
    valkey: EmbeddedValkey,
    simulator: BotApiSimulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = gateway_settings(valkey, simulator, events_max=1000)
    async with (
        running_gateway(settings) as (gw, _),
        AsyncNotificationClient(target(gw)) as client,
    ):
        first = (await client.send("9", "first", delay=3600)).job_id
        async with client.watch_events(start_cursor="0-0", job_ids=[first]) as events:
            [seen] = await take(events, 1)
        # Delayed jobs: one event each, nothing delivered meanwhile.
        for _ in range(3):
            await client.send_batch([msg("9", delay={"seconds": 3600}) for _ in range(1000)])
        async with client.watch_events(start_cursor=seen.cursor) as events:
            after = await take(events, 2)
        code, out, _ = await cli(
            capsys, "events", "--target", target(gw), "--from", seen.cursor, "--count", "1"
        )
    key = QueueKeys.for_queue(settings.queue_name).events
    oldest = (await redis.xrange(key, "-", "+", count=1))[0][0].decode()
    assert after[0].gap and after[0].cursor == oldest
    assert not after[1].gap
    gap, line = out.splitlines()
    assert code == 0 and gap.startswith(f"gap: events before {oldest} were trimmed")
    assert oldest in line and "delayed" in line


async def test_wait_job_returns_completed_failed_and_already_final_jobs(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    gw, _ = gateway
    simulator.block_chat("13")
    async with AsyncNotificationClient(target(gw)) as client:
        delivered = (await client.send("12", "ok")).job_id
        failing = (await client.send("13", "blocked")).job_id
        done = await client.wait_job(delivered)
        failed = await client.wait_job(failing, timeout=30)
        # Final already: the read after the watch starts answers at once.
        again = await client.wait_job(delivered, timeout=30)
    assert done.state == COMPLETED and done.telegram_message_id
    assert failed.state == FAILED and "blocked" in failed.last_error
    assert again == done

    def blocking() -> tuple[pb.Job, pb.Job]:
        with NotificationClient(target(gw)) as client:
            return client.wait_job(failing), client.wait_job(delivered, timeout=30)

    assert await asyncio.to_thread(blocking) == (failed, done)


async def test_wait_job_times_out_with_the_clients_deadline_error(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    gw, _ = gateway
    async with AsyncNotificationClient(target(gw)) as client:
        later = (await client.send("14", "later", delay=3600)).job_id
        with pytest.raises(DeadlineExceededError) as raised:
            await client.wait_job(later, timeout=0.2)
    assert isinstance(raised.value, TimeoutError) and later in str(raised.value)

    def blocking() -> None:
        with NotificationClient(target(gw)) as client:
            client.wait_job(later, timeout=0.2)

    with pytest.raises(TimeoutError):
        await asyncio.to_thread(blocking)


async def test_send_with_wait_returns_the_final_job(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    gw, _ = gateway
    async with AsyncNotificationClient(target(gw)) as client:
        job = await client.send("15", "waited for", wait=True, wait_timeout=30)
        reply = await client.send("15", "not waited for")
    assert job.state == COMPLETED and job.request.text == "waited for"
    assert isinstance(reply, pb.SendResponse)

    def blocking() -> pb.Job:
        with NotificationClient(target(gw)) as client:
            return client.send("16", "blocking", priority=3, wait=True)

    job = await asyncio.to_thread(blocking)
    assert job.state == COMPLETED and job.request.priority == 3


async def test_invalid_watches_raise_without_reconnecting(gateway: tuple[Gateway, Stub]) -> None:
    gw, _ = gateway
    async with AsyncNotificationClient(target(gw)) as client:
        with pytest.raises(InvalidArgumentError) as raised:
            async with client.watch_events(start_cursor="yesterday") as events:
                await take(events, 1)
        assert raised.value.violations[0][0] == "start_cursor"
        with pytest.raises(ValueError, match="unknown job state"):
            client.watch_events(states=["finished"])


async def test_closing_a_blocked_watch_from_another_thread_ends_it(
    gateway: tuple[Gateway, Stub],
) -> None:
    gw, _ = gateway
    with NotificationClient(target(gw)) as client:
        events = client.watch_events()
        await asyncio.to_thread(events.connect)
        iterating = asyncio.create_task(asyncio.to_thread(list, events))
        # Most likely blocked on the stream by then; closed before it starts ends it too.
        await asyncio.sleep(0.1)
        events.close()
        async with asyncio.timeout(30):
            assert await iterating == []


async def test_cli_events_prints_a_line_or_a_json_object_per_event(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    gw, stub = gateway
    simulator.block_chat("19")
    ok = (await stub.Send(msg("18"))).job_id
    blocked = (await stub.Send(msg("19"))).job_id
    await wait_state(stub, ok, COMPLETED)
    job = await wait_state(stub, blocked, FAILED)
    watch = ["events", "--target", target(gw), "--from", "0-0"]
    code, out, err = await cli(capsys, *watch, "--job", ok, blocked, "--count", "6")
    assert code == 0 and err.strip() == "watching events after 0-0"
    # The two jobs are delivered side by side: each one's events are in order.
    lines = {
        job_id: [line for line in out.splitlines() if f"  job {job_id}  " in line]
        for job_id in (ok, blocked)
    }
    assert len(out.splitlines()) == 6
    assert [line.split("  ")[3] for line in lines[ok]] == ["waiting", "active", "completed"]
    assert [line.split("  ")[3] for line in lines[blocked]] == ["waiting", "active", "failed"]
    assert "telegram id" in lines[ok][2] and "chat 18" in lines[ok][2]
    assert "1 failed attempt" in lines[blocked][2] and "error: Forbidden" in lines[blocked][2]

    code, out, _ = await cli(
        capsys, *watch, "--state", "failed", "--chat", "19", "--json", "--count", "1"
    )
    [line] = out.splitlines()
    response = json.loads(line)
    assert code == 0 and response["gap"] is False
    assert response["event"]["job_id"] == blocked
    assert response["event"]["state"] == "JOB_STATE_FAILED"
    assert response["event"]["error"] == job.last_error


async def test_cli_send_wait_prints_the_final_job(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    gw, _ = gateway
    simulator.block_chat("21")
    send = ["send", "--target", target(gw), "--wait", "--text", "waited"]
    code, out, _ = await cli(capsys, *send, "--chat", "20")
    job_id, *shown = out.splitlines()
    assert code == 0 and shown[0].split() == ["job:", job_id]
    assert any(line.split() == ["state:", "completed"] for line in shown)
    code, out, _ = await cli(capsys, *send, "--chat", "21")
    assert code == 1 and any(line.split() == ["state:", "failed"] for line in out.splitlines())

"""Alerts: every rule of notigate.alerts at its thresholds' edges, and the alerts a running
gateway reports in GetStats and as the notigate_alert_firing gauge."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from redis.asyncio import Redis

from notigate.alerts import Alert, AlertKind, Figures, firing
from notigate.config import Settings
from notigate.embedded import EmbeddedValkey
from notigate.simulator import BotApiSimulator
from notigate_client import pb
from tests.conftest import TOKEN, Stub, gateway_settings, running_gateway, wait_for
from tests.test_metrics import scrape, value

SETTINGS = Settings(
    alert_failure_rate=0.2,
    alert_failure_window_s=300,
    alert_failure_min_jobs=10,
    alert_backlog_age_s=300,
)
HEALTHY = Figures(
    bot="default",
    delivered=100,
    failed=0,
    oldest_waiting_s=None,
    dispatchers=1,
    token_ok=True,
)


def figures(**changes: Any) -> Figures:
    return dataclasses.replace(HEALTHY, **changes)


def kinds(alerts: list[Alert]) -> list[AlertKind]:
    return [a.kind for a in alerts]


def test_nothing_fires_for_a_healthy_bot() -> None:
    assert firing(HEALTHY, SETTINGS) == []


def test_failure_rate_fires_above_the_share_and_says_it_in_figures() -> None:
    [alert] = firing(figures(delivered=28, failed=12), SETTINGS)
    assert alert.kind is AlertKind.FAILURE_RATE
    assert alert.message == "12 of 40 deliveries failed in the last 5 minutes (30% > 20%)"
    assert (alert.value, alert.threshold) == (0.3, 0.2)
    assert alert.to_pb().kind == pb.ALERT_KIND_FAILURE_RATE


@pytest.mark.parametrize(
    ("delivered", "failed", "fires"),
    [
        (8, 2, False),  # exactly 20% of 10: not above the share
        (7, 3, True),  # 30% of 10: the minimum of jobs ended
        (6, 3, False),  # 33% but only 9 ended: too few to tell
        (0, 10, True),  # every one of 10 failed
        (0, 0, False),  # nothing ended
    ],
)
def test_failure_rate_edges(delivered: int, failed: int, fires: bool) -> None:
    got = kinds(firing(figures(delivered=delivered, failed=failed), SETTINGS))
    assert (AlertKind.FAILURE_RATE in got) is fires


def test_failure_rate_needs_a_measured_window() -> None:
    assert firing(figures(delivered=None, failed=None), SETTINGS) == []


def test_failure_rate_names_its_window() -> None:
    settings = SETTINGS.replace(alert_failure_window_s=90, alert_failure_min_jobs=1)
    [alert] = firing(figures(delivered=0, failed=1), settings)
    assert "in the last 90 seconds (100% > 20%)" in alert.message


@pytest.mark.parametrize(("age", "fires"), [(None, False), (300.0, False), (300.5, True)])
def test_backlog_age_fires_above_the_threshold(age: float | None, fires: bool) -> None:
    got = firing(figures(oldest_waiting_s=age), SETTINGS)
    assert (kinds(got) == [AlertKind.BACKLOG_AGE]) is fires
    if fires:
        assert got[0].message == "the oldest due message has waited 300.5 s (> 300 s)"
        assert (got[0].value, got[0].threshold) == (300.5, 300.0)


@pytest.mark.parametrize(("dispatchers", "fires"), [(0, True), (1, False), (3, False)])
def test_no_dispatcher_fires_when_none_reported_in(dispatchers: int, fires: bool) -> None:
    got = firing(figures(dispatchers=dispatchers), SETTINGS)
    assert (kinds(got) == [AlertKind.NO_DISPATCHER]) is fires


def test_token_rejected_fires_while_telegram_rejects_the_token() -> None:
    [alert] = firing(figures(token_ok=False), SETTINGS)
    assert alert.kind is AlertKind.TOKEN_REJECTED and alert.bot == "default"
    assert "401" in alert.message


def test_several_fire_together_in_kind_order() -> None:
    got = firing(
        figures(delivered=0, failed=50, oldest_waiting_s=900.0, dispatchers=0, token_ok=False),
        SETTINGS,
    )
    assert kinds(got) == list(AlertKind)


def test_the_metric_labels_are_the_kinds_without_prefix() -> None:
    assert [k.label for k in AlertKind] == [
        "failure_rate",
        "backlog_age",
        "no_dispatcher",
        "token_rejected",
    ]
    assert [k.value for k in AlertKind] == [
        pb.ALERT_KIND_FAILURE_RATE,
        pb.ALERT_KIND_BACKLOG_AGE,
        pb.ALERT_KIND_NO_DISPATCHER,
        pb.ALERT_KIND_TOKEN_REJECTED,
    ]


# -- through a running gateway ----------------------------------------------------


async def _alerts(stub: Stub) -> dict[int, pb.Alert]:
    stats = await stub.GetStats(pb.GetStatsRequest())
    return {a.kind: a for a in stats.alerts}


async def test_a_rejected_token_fires_in_get_stats(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    async with running_gateway(gateway_settings(valkey, simulator)) as (_gw, stub):
        simulator.revoke_token(TOKEN)
        await stub.Send(pb.SendRequest(chat_id="41", text="held"))

        async def rejected() -> bool:
            return pb.ALERT_KIND_TOKEN_REJECTED in await _alerts(stub)

        await wait_for(rejected)
        alert = (await _alerts(stub))[pb.ALERT_KIND_TOKEN_REJECTED]
        assert alert.bot == "default"
        simulator.accept_token(TOKEN)

        async def accepted() -> bool:
            return pb.ALERT_KIND_TOKEN_REJECTED not in await _alerts(stub)

        await wait_for(accepted)


async def test_a_backlog_older_than_the_threshold_fires(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    # Below the range NOTIGATE_ALERT_BACKLOG_AGE_S accepts (10 s and up): the ranges
    # hold for the environment (from_env), the Settings object takes any value.
    settings = gateway_settings(valkey, simulator).replace(alert_backlog_age_s=0)
    simulator.rate_limit_chat("42", retry_after=3600)
    async with running_gateway(settings) as (_gw, stub):
        await stub.Send(pb.SendRequest(chat_id="42", text="held an hour"))

        async def backlog() -> bool:
            return pb.ALERT_KIND_BACKLOG_AGE in await _alerts(stub)

        await wait_for(backlog)
        alert = (await _alerts(stub))[pb.ALERT_KIND_BACKLOG_AGE]
        assert alert.threshold == 0 and alert.value > 0
        assert alert.message.startswith("the oldest due message has waited ")
        assert alert.message.endswith("s (> 0 s)")


async def test_the_alert_gauges_follow_the_alerts(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    settings = gateway_settings(valkey, simulator, metrics_listen="127.0.0.1:0")
    async with running_gateway(settings) as (gw, stub):

        async def reported() -> bool:
            got = await scrape(gw.metrics_port)
            return value(got, "notigate_dispatchers") == 1

        await wait_for(reported)
        got = await scrape(gw.metrics_port)
        for kind in AlertKind:
            assert value(got, "notigate_alert_firing", alert=kind.label) == 0
        simulator.revoke_token(TOKEN)
        await stub.Send(pb.SendRequest(chat_id="43", text="held"))

        async def firing_now() -> bool:
            got = await scrape(gw.metrics_port)
            return value(got, "notigate_alert_firing", alert="token_rejected") == 1

        await wait_for(firing_now, timeout_s=40)
        got = await scrape(gw.metrics_port)
        assert value(got, "notigate_alert_firing", alert="no_dispatcher") == 0
        assert value(got, "notigate_dispatchers") == 1

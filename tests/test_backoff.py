"""Exponential backoff: doubling per failure, capped, and finite however long failures last."""

from __future__ import annotations

from notigate.backoff import exponential_backoff
from notigate.errors import QueueUnavailable
from notigate.supervisor import Spell


def test_the_wait_doubles_per_failure_up_to_the_cap() -> None:
    waits = [exponential_backoff(n, 0.05, 1.0) for n in range(8)]
    assert waits == [0.05, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert exponential_backoff(3, 50, 500) == 200  # any unit: job retries count in ms


def test_a_long_run_of_failures_stays_at_the_cap() -> None:
    # A float base times 2**1100 would overflow; a Redis outage lasts that many retries.
    assert exponential_backoff(100_000, 0.05, 1.0) == 1.0
    spell = Spell("leasing jobs")
    for _ in range(2_000):
        spell.failed(QueueUnavailable("Redis is unreachable"))
    assert spell.delay_s(0.05, 1.0) == 1.0

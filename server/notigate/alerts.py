"""Which alerts fire for one bot, decided from its figures alone (no I/O).

An alert is a condition an operator should look at; each says what is wrong in the
figures that made it fire. The thresholds are settings (NOTIGATE_ALERT_*).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from notigate.config import Settings
from notigate.queue.monitor import DISPATCHER_FRESH_MS
from notigate_client import pb

_SPANS = ((86_400, "day"), (3_600, "hour"), (60, "minute"), (1, "second"))


class AlertKind(Enum):
    """The conditions, as the API names them (the value: AlertKind's number)."""

    FAILURE_RATE = pb.ALERT_KIND_FAILURE_RATE
    BACKLOG_AGE = pb.ALERT_KIND_BACKLOG_AGE
    NO_DISPATCHER = pb.ALERT_KIND_NO_DISPATCHER
    TOKEN_REJECTED = pb.ALERT_KIND_TOKEN_REJECTED

    @property
    def label(self) -> str:
        """The metric label: ``failure_rate``, ``backlog_age``, ..."""
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Figures:
    """What the alerts look at for one bot."""

    bot: str
    # Sent and given up over the alert window (None: no sample covers the window yet).
    delivered: int | None
    failed: int | None
    # How long the oldest due message has waited (None: none waits).
    oldest_waiting_s: float | None
    # Gateways whose dispatcher for the bot reported in lately.
    dispatchers: int
    # False once Telegram rejected the bot's token.
    token_ok: bool


@dataclass(frozen=True, slots=True)
class Alert:
    """One condition firing now."""

    kind: AlertKind
    bot: str
    message: str
    value: float = 0.0
    threshold: float = 0.0

    def to_pb(self) -> pb.Alert:
        return pb.Alert(
            kind=self.kind.value,
            bot=self.bot,
            message=self.message,
            value=self.value,
            threshold=self.threshold,
        )


def _span(seconds: int) -> str:
    """``300`` -> ``"5 minutes"``, ``90`` -> ``"90 seconds"``: the largest unit that
    divides the span exactly."""
    for size, unit in _SPANS:
        if seconds % size == 0 and seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'' if n == 1 else 's'}"
    return f"{seconds} seconds"


def _percent(share: float) -> str:
    return f"{share * 100:.3g}%"


def _seconds(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _failure_rate(f: Figures, s: Settings) -> Alert | None:
    if f.delivered is None or f.failed is None:
        return None
    ended = f.delivered + f.failed
    if ended == 0 or ended < s.alert_failure_min_jobs:
        return None
    share = f.failed / ended
    if share <= s.alert_failure_rate:
        return None
    return Alert(
        AlertKind.FAILURE_RATE,
        f.bot,
        f"{f.failed} of {ended} deliveries failed in the last "
        f"{_span(s.alert_failure_window_s)} ({_percent(share)} > "
        f"{_percent(s.alert_failure_rate)})",
        value=share,
        threshold=s.alert_failure_rate,
    )


def _backlog_age(f: Figures, s: Settings) -> Alert | None:
    age = f.oldest_waiting_s
    if age is None or age <= s.alert_backlog_age_s:
        return None
    return Alert(
        AlertKind.BACKLOG_AGE,
        f.bot,
        f"the oldest due message has waited {_seconds(age)} s "
        f"(> {_seconds(s.alert_backlog_age_s)} s)",
        value=age,
        threshold=float(s.alert_backlog_age_s),
    )


def _no_dispatcher(f: Figures, _s: Settings) -> Alert | None:
    if f.dispatchers > 0:
        return None
    return Alert(
        AlertKind.NO_DISPATCHER,
        f.bot,
        f"no gateway's dispatcher for the bot reported in within "
        f"{DISPATCHER_FRESH_MS // 1000} s: nothing is delivered",
    )


def _token_rejected(f: Figures, _s: Settings) -> Alert | None:
    if f.token_ok:
        return None
    return Alert(
        AlertKind.TOKEN_REJECTED,
        f.bot,
        "Telegram rejected the bot's token (401): its messages wait until it is accepted",
    )


_RULES = (_failure_rate, _backlog_age, _no_dispatcher, _token_rejected)


def firing(figures: Figures, settings: Settings) -> list[Alert]:
    """The alerts firing for ``figures``' bot, in AlertKind order."""
    return [a for rule in _RULES if (a := rule(figures, settings)) is not None]

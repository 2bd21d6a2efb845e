"""Knobs of the Bot API simulator: limits, injected faults and latency."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["SANDBOX_TOKEN", "SimulatorConfig", "config_with"]

# Not a secret: the token the simulator accepts when it is given none (sandbox mode, bench).
SANDBOX_TOKEN = "100000:notigate-sandbox-token"  # noqa: S105


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Behaviour of a :class:`~notigate.simulator.BotApiSimulator`.

    Rates are counts of accepted sends allowed in any sliding window of the given length.
    Sends with ``allow_paid_broadcast=true`` are checked against ``paid_broadcast_rate``
    instead of ``global_rate`` in the same per-token window (both kinds count in it).
    """

    enforce_limits: bool = True
    global_rate: int = 30
    global_window_s: float = 1.0
    paid_broadcast_rate: int = 1000
    private_rate: int = 1
    private_window_s: float = 1.0
    group_rate: int = 20
    group_window_s: float = 60.0
    error_rate: float = 0.0
    seed: int | None = None
    latency_s: float = 0.0
    latency_jitter_s: float = 0.0
    missing_chats: frozenset[str] = frozenset()


_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(SimulatorConfig))


def _coerce(name: str, value: Any) -> Any:
    """Turn JSON-ish values (lists, ints for floats) into the field's type."""
    if name == "missing_chats":
        if isinstance(value, str) or not isinstance(value, Iterable):
            raise ValueError("missing_chats must be a list of chat ids")
        return frozenset(str(v) for v in value)
    if name == "seed":
        return None if value is None else int(value)
    if name == "enforce_limits":
        if not isinstance(value, bool):
            raise ValueError("enforce_limits must be a boolean")
        return value
    if name.endswith("_rate") and name != "error_rate":
        return int(value)
    return float(value)


def config_with(config: SimulatorConfig, changes: Mapping[str, Any]) -> SimulatorConfig:
    """Return ``config`` with ``changes`` applied, validating names and coercing types.

    Raises:
        ValueError: unknown field or a value of the wrong kind.
    """
    unknown = set(changes) - _FIELD_NAMES
    if unknown:
        raise ValueError(f"unknown simulator config fields: {sorted(unknown)}")
    try:
        coerced = {name: _coerce(name, value) for name, value in changes.items()}
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from exc
    if not 0.0 <= coerced.get("error_rate", config.error_rate) <= 1.0:
        raise ValueError("error_rate must be within 0..1")
    return dataclasses.replace(config, **coerced)

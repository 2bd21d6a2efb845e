"""Every numeric setting has a sane range, refused at startup with a message naming the
variable, the value and the range, all problems at once; relations between settings too.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import Any

import pytest

from notigate.cli import main
from notigate.config import (
    CHOICES,
    RANGES,
    RELATIONS,
    ConfigError,
    Limits,
    Range,
    Settings,
    env_var,
    from_env,
    validate,
)

README = Path(__file__).resolve().parents[1] / "README.md"

# Partners of the relations set where they can never be what refuses a value under test.
RELAXED: dict[str, Any] = {
    "backoff_base_ms": 10,
    "backoff_max_ms": 86_400_000,
    "lease_ms": 600_000,
    "redis_timeout_s": 0.05,
}


def is_float(path: str) -> bool:
    owner, _, attr = path.rpartition(".")
    cls = Limits if owner == "limits" else Settings
    return typing.get_type_hints(cls)[attr] is float


def text(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def build(path: str, value: float) -> Settings:
    """Settings with ``path`` at ``value``, through the variable when it has one (the
    way `notigate serve` reads it), and relations' partners relaxed."""
    overrides = {k: v for k, v in RELAXED.items() if k != path}
    name = env_var(path)
    if name is not None:
        return from_env({name: text(value)}, **overrides)
    if path.startswith("limits."):
        settings = Settings(limits=Limits(**{path.removeprefix("limits."): value}))
    else:
        settings = Settings(**{path: value})
    settings = settings.replace(**overrides)
    validate(settings)
    return settings


def value_of(settings: Settings, path: str) -> Any:
    owner: Any = settings
    for part in path.split("."):
        owner = getattr(owner, part)
    return owner


def outside(path: str, bounds: Range) -> list[float]:
    if is_float(path):
        below = bounds.low / 2 if bounds.low > 0 else -1.0
        values = [below, float(bounds.high) * 1.5, float(bounds.high) * 1e20]
    else:
        values = [int(bounds.low) - 1, int(bounds.high) + 1, 10**20]
    return [v for v in values if v != bounds.off]


def boundaries(path: str, bounds: Range) -> list[float]:
    ends = [bounds.low, bounds.high] + ([] if bounds.off is None else [bounds.off])
    return [float(v) for v in ends] if is_float(path) else [int(v) for v in ends]


def number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def test_every_numeric_setting_has_a_range() -> None:
    """A numeric setting added later must say its range (one line in config.RANGES)."""
    missing = []
    for prefix, cls in (("", Settings), ("limits.", Limits)):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if hints[f.name] in (int, float) and f"{prefix}{f.name}" not in RANGES:
                missing.append(f"{prefix}{f.name}")
    assert missing == [], f"add a line to config.RANGES for: {missing}"
    assert all(
        is_float(p) or (r.low == int(r.low) and r.high == int(r.high)) for p, r in RANGES.items()
    )


@pytest.mark.parametrize("path", RANGES)
def test_the_defaults_are_in_range(path: str) -> None:
    bounds = RANGES[path]
    assert bounds.low <= value_of(Settings(), path) <= bounds.high


@pytest.mark.parametrize(
    ("path", "value"),
    [(p, v) for p, r in RANGES.items() for v in outside(p, r)],
)
def test_a_value_out_of_range_is_refused_naming_variable_value_and_range(
    path: str, value: float
) -> None:
    bounds = RANGES[path]
    with pytest.raises(ConfigError) as refused:
        build(path, value)
    [problem] = refused.value.problems
    assert problem.startswith(f"{env_var(path) or path}=")
    assert "out of range" in problem
    assert f"between {number(bounds.low)} and {number(bounds.high)}" in problem


@pytest.mark.parametrize(
    ("path", "value"),
    [(p, v) for p, r in RANGES.items() for v in boundaries(p, r)],
)
def test_both_ends_of_a_range_are_accepted(path: str, value: float) -> None:
    assert value_of(build(path, value), path) == value


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        # What a run against the gateway set, each of which stopped delivery silently.
        ("NOTIGATE_GLOBAL_RATE", str(10**21)),
        ("NOTIGATE_GLOBAL_RATE", "1e21"),
        ("NOTIGATE_GROUP_WINDOW_MS", str(10**20)),
        ("NOTIGATE_LEASE_MS", "1"),
        ("NOTIGATE_CONCURRENCY", "100000000"),
        ("NOTIGATE_MAX_ATTEMPTS", "1000000"),
        ("NOTIGATE_BACKOFF_BASE_MS", "0"),
        ("NOTIGATE_SHUTDOWN_GRACE_S", "1e21"),
        ("NOTIGATE_SHUTDOWN_GRACE_S", "nan"),
        ("NOTIGATE_SHUTDOWN_GRACE_S", "inf"),
        ("NOTIGATE_KEEP_AGE_S", "0"),
        ("NOTIGATE_SEND_LINGER_MS", "86400000"),
        ("NOTIGATE_PRIVATE_RATE", "0"),
        ("NOTIGATE_GROUP_RATE", str(10**7)),
    ],
)
def test_absurd_values_are_refused(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name}") as refused:
        from_env({name: raw})
    assert re.search(r"between \S+ and \S+", str(refused.value)), refused.value


def test_every_problem_is_reported_at_once() -> None:
    env = {
        "NOTIGATE_GLOBAL_RATE": str(10**21),
        "NOTIGATE_GROUP_WINDOW_MS": str(10**20),
        "NOTIGATE_LEASE_MS": "1",
        "NOTIGATE_CONCURRENCY": "many",
        "NOTIGATE_LOG_FORMAT": "xml",
    }
    with pytest.raises(ConfigError) as refused:
        from_env(env)
    problems = refused.value.problems
    assert len(problems) == len(env), problems
    for name in env:
        assert sum(p.startswith(name) for p in problems) == 1, (name, problems)
    assert str(refused.value).startswith(f"{len(env)} settings are wrong:")


def test_a_flag_is_named_as_the_flag() -> None:
    with pytest.raises(ConfigError) as refused:
        from_env({}, concurrency=0)
    [problem] = refused.value.problems
    assert problem.startswith("--concurrency=0 (NOTIGATE_CONCURRENCY) is out of range")


@pytest.mark.parametrize(
    ("env", "fields", "named"),
    [
        (
            {"NOTIGATE_BACKOFF_BASE_MS": "60000", "NOTIGATE_BACKOFF_MAX_MS": "30000"},
            {},
            ["NOTIGATE_BACKOFF_BASE_MS=60000", "NOTIGATE_BACKOFF_MAX_MS=30000"],
        ),
        # One renewal, a third into the lease, may take the whole Redis timeout.
        ({"NOTIGATE_LEASE_MS": "1400"}, {}, ["NOTIGATE_LEASE_MS=1400", "redis_timeout_s=1"]),
        ({"NOTIGATE_LEASE_MS": "5000"}, {"redis_timeout_s": 4.0}, ["redis_timeout_s=4"]),
    ],
)
def test_settings_that_do_not_work_together_are_refused(
    env: dict[str, str], fields: dict[str, Any], named: list[str]
) -> None:
    with pytest.raises(ConfigError) as refused:
        from_env(env, **fields)
    [problem] = refused.value.problems
    for part in named:
        assert part in problem


def test_a_range_may_have_a_value_that_turns_the_setting_off() -> None:
    bounds = Range(10, 100, off=0)
    assert [bounds.allows(v) for v in (0, 10, 100)] == [True, True, True]
    assert [bounds.allows(v) for v in (-1, 1, 9, 101, float("nan"))] == [False] * 5


def test_the_relations_hold_for_the_defaults() -> None:
    validate(Settings())
    assert {r.left for r in RELATIONS} <= set(RANGES)
    assert from_env({"NOTIGATE_LEASE_MS": "1500"}).lease_ms == 1500


@pytest.mark.parametrize("value", ["everysec", "always", "no"])
def test_embedded_fsync_takes_valkeys_values(value: str) -> None:
    assert from_env({"NOTIGATE_EMBEDDED_FSYNC": value}).embedded_fsync == value
    assert CHOICES["embedded_fsync"][0] == Settings().embedded_fsync == "everysec"


@pytest.mark.parametrize("value", ["sometimes", "ALWAYS ", "1"])
def test_embedded_fsync_refuses_other_values(value: str) -> None:
    with pytest.raises(ConfigError, match="NOTIGATE_EMBEDDED_FSYNC must be everysec, always or no"):
        from_env({"NOTIGATE_EMBEDDED_FSYNC": value})


def test_serve_refuses_out_of_range_settings_before_starting(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    env = {
        "NOTIGATE_DATA_DIR": str(tmp_path / "data"),
        "NOTIGATE_SANDBOX_LISTEN": "127.0.0.1:0",
        "NOTIGATE_LISTEN": "127.0.0.1:0",
        "NOTIGATE_LEASE_MS": "1",
        "NOTIGATE_GROUP_WINDOW_MS": str(10**20),
    }
    assert main(["serve", "--sandbox"], env) == 2
    err = capsys.readouterr().err
    assert err.startswith("notigate: 2 settings are wrong:"), err
    assert "NOTIGATE_LEASE_MS=1 is out of range: must be between 1000 and 600000 ms" in err
    assert "NOTIGATE_GROUP_WINDOW_MS=100000000000000000000 is out of range" in err
    assert "Traceback" not in err
    assert not (tmp_path / "data").exists()


def test_the_readme_gives_every_variables_range() -> None:
    rows = [line for line in README.read_text().splitlines() if line.startswith("| `")]
    for path, bounds in RANGES.items():
        name = env_var(path)
        if name is None:
            continue
        [row] = [r for r in rows if f"`{name}`" in r]
        assert f"{number(bounds.low)}\u2013{number(bounds.high)}" in row, (name, row)
    for attr, allowed in CHOICES.items():
        name = env_var(attr)
        assert name is not None
        [row] = [r for r in rows if f"`{name}`" in r]
        assert all(f"`{v}`" in row for v in allowed), (name, row)


def test_embedded_fsync_with_an_own_redis_is_noticed() -> None:
    own = from_env({"REDIS_URL": "redis://127.0.0.1:1/0", "NOTIGATE_EMBEDDED_FSYNC": "always"})
    assert any("NOTIGATE_EMBEDDED_FSYNC has no effect with REDIS_URL" in n for n in own.notices)
    assert from_env({"NOTIGATE_EMBEDDED_FSYNC": "always"}).notices == ()

"""NOTIGATE_BOTS_FILE: the bots and token bindings it names, and every way it can be wrong."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from notigate.config import DEFAULT_BOT, ConfigError, Limits, from_env

GOOD = """
[bots.support]
token_env = "SUPPORT_TOKEN"
global_rate = 20
private_rate = 2

[bots.alerts]
token = "222:alerts-token"
paid_broadcast = true
api_url = "http://127.0.0.1:8081"
concurrency = 8

[[api_tokens]]
token_env = "BACKEND_TOKEN"
bots = ["support"]

[[api_tokens]]
sha256 = "{digest}"
bots = ["alerts", "support"]
"""


def _env(tmp_path: Path, text: str, **extra: str) -> dict[str, str]:
    path = tmp_path / "bots.toml"
    path.write_text(text)
    return {"NOTIGATE_BOTS_FILE": str(path), "REDIS_URL": "redis://localhost:1", **extra}


def test_a_bots_file_names_bots_their_settings_and_bound_tokens(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"ops-token").hexdigest()
    env = _env(
        tmp_path,
        GOOD.format(digest=digest),
        SUPPORT_TOKEN="111:support-token",
        BACKEND_TOKEN="backend-token",
        NOTIGATE_GLOBAL_RATE="25",
    )
    settings = from_env(env)
    support, alerts = settings.bot_list()
    assert (support.name, support.token, alerts.token) == (
        "support",
        "111:support-token",
        "222:alerts-token",
    )
    # Overrides field by field over the gateway's limits.
    assert support.limits == Limits(global_rate=20, private_rate=2)
    assert alerts.limits is None
    assert settings.for_bot(alerts).paid_broadcast and settings.for_bot(alerts).concurrency == 8
    assert settings.for_bot(alerts).telegram_api_url == "http://127.0.0.1:8081"
    assert settings.for_bot(support).global_rate == 20
    assert not settings.for_bot(support).paid_broadcast
    first, second = settings.token_bindings
    assert first.sha256 == hashlib.sha256(b"backend-token").digest()
    assert first.bots == {"support"} and second.bots == {"alerts", "support"}
    assert second.sha256.hex() == digest


def test_without_a_bots_file_bot_token_is_the_default_bot() -> None:
    settings = from_env({"BOT_TOKEN": "1:x", "REDIS_URL": "redis://localhost:1"})
    [bot] = settings.bot_list()
    assert (bot.name, bot.token) == (DEFAULT_BOT, "1:x")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[bots.Big]\ntoken = '1:x'", "a bot name is 1-32 of a-z"),
        ("[bots.a]\ntoken = '1:x'\nspeed = 3", "unknown key(s) speed"),
        ("[bots.a]\ntoken_env = 'MISSING'", "token_env names 'MISSING', which is not set"),
        ("[bots.a]\n", "no token for bot(s) a"),
        ("[bots.a]\ntoken = '1:x'\ntoken_env = 'T'", "token and token_env exclude each other"),
        ("[bots.a]\ntoken = '1:x'\nglobal_rate = 0", "global_rate must be an integer between 1"),
        ("[bots.a]\ntoken = '1:x'\nconcurrency = true", "concurrency must be an integer"),
        ("[bots.a]\ntoken = '1:x'\napi_url = 'ftp://x'", "api_url must be an http(s) URL"),
        ("[bots.a]\ntoken = '1:x'\n[[api_tokens]]\ntoken = 't'\nbots = ['b']", "no bot b"),
        ("[bots.a]\ntoken = '1:x'\n[[api_tokens]]\nsha256 = 'abc'\nbots = ['a']", "64 hex"),
        ("[bots.a]\ntoken = '1:x'\n[[api_tokens]]\nbots = ['a']", "needs token, token_env"),
        ("[bots.a]\ntoken = '1:x'\n[[api_tokens]]\ntoken = 't'", "bots must be a non-empty"),
        ("[bots]\n", "no [bots.<name>] table"),
        ("[bots.a\n", "not valid TOML"),
        ("[bots.a]\ntoken = '1:x'\n[extra]\n", "unknown table(s) extra"),
    ],
)
def test_a_wrong_bots_file_is_refused_naming_the_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as err:
        from_env(_env(tmp_path, text))
    assert problem in str(err.value)
    assert str(tmp_path / "bots.toml") in str(err.value) or "NOTIGATE_BOTS_FILE" in str(err.value)


def test_a_missing_bots_file_is_refused() -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        from_env({"NOTIGATE_BOTS_FILE": "/nonexistent/bots.toml"})


def test_sandbox_mode_makes_up_missing_tokens(tmp_path: Path) -> None:
    settings = from_env({**_env(tmp_path, "[bots.a]\n[bots.b]\n")}, sandbox=True)
    assert [b.name for b in settings.bot_list()] == ["a", "b"]


def test_bot_token_beside_a_bots_file_is_noticed(tmp_path: Path) -> None:
    env = _env(tmp_path, "[bots.a]\ntoken = '1:x'", BOT_TOKEN="2:y")
    assert any("BOT_TOKEN is ignored" in n for n in from_env(env).notices)
    env = _env(tmp_path, "[bots.a]\ntoken_env = 'BOT_TOKEN'", BOT_TOKEN="2:y")
    assert not from_env(env).notices


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"NOTIGATE_REDIS_CLUSTER": "1"}, "NOTIGATE_REDIS_CLUSTER needs REDIS_URL"),
        ({"NOTIGATE_REDIS_SENTINELS": "h:1"}, "needs NOTIGATE_REDIS_SENTINEL_MASTER"),
        ({"NOTIGATE_REDIS_SENTINEL_MASTER": "m"}, "needs NOTIGATE_REDIS_SENTINELS"),
        (
            {"NOTIGATE_REDIS_SENTINELS": "nohost", "NOTIGATE_REDIS_SENTINEL_MASTER": "m"},
            "'nohost' is not host:port",
        ),
        ({"NOTIGATE_REDIS_WAIT_REPLICAS": "17"}, "NOTIGATE_REDIS_WAIT_REPLICAS=17 is out of range"),
    ],
)
def test_redis_topology_settings_are_checked(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        from_env({"BOT_TOKEN": "1:x", **env})
    assert problem in str(err.value)


def test_the_example_bots_file_is_valid() -> None:
    example = Path(__file__).parent.parent / "deploy" / "bots.example.toml"
    env = {
        "NOTIGATE_BOTS_FILE": str(example),
        **{v: f"1:{v}" for v in ("BOT_TOKEN", "SUPPORT_BOT_TOKEN", "MARKETING_BOT_TOKEN")},
        "ALERTS_BOT_TOKEN": "4:a",
        "SHOP_BACKEND_API_TOKEN": "shop",
    }
    settings = from_env(env)
    assert [b.name for b in settings.bot_list()] == ["default", "support", "marketing", "alerts"]
    assert [sorted(b.bots) for b in settings.token_bindings] == [
        ["default", "support"],
        ["marketing"],
    ]
    assert not settings.notices

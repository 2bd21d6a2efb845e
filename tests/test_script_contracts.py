"""Every script's header against its wrapper: the KEYS and ARGV it names, in order, the
configuration it reads, the codes it returns and the includes it splices in.

BullMQ puts the key count into its script file names (``moveToDelayed-12.lua``); this is
the stronger form of that check, so a header cannot drift from the code that calls it.
"""

from __future__ import annotations

import dataclasses
import re
from importlib import resources

import pytest
from redis.asyncio import Redis

from notigate.config import Settings
from notigate.queue import QueueKeys
from notigate.queue.scripts import QueueScripts, ScriptBase, ScriptConfig, Status
from notigate.queue.scripts.source import read

_LUA = resources.files("notigate.queue.scripts").joinpath("lua")
_ENTRY = re.compile(r"^\s*(KEYS|ARGV)\[(\d+)(\.\.)?\]\s+(\w+)", re.MULTILINE)
_CODE = re.compile(r"\b[A-Z][A-Z_]{2,}\b")
_GENERATED = {"states", "codes"}


def _wrappers() -> list[ScriptBase[object]]:
    # Registering needs a client object only; nothing is sent until load().
    redis = Redis()
    config = ScriptConfig.from_settings(Settings(), origin="test")
    return QueueScripts.register(redis, QueueKeys.for_queue("contract"), config).all()


WRAPPERS = _wrappers()


def _header(name: str) -> str:
    text = read(f"{name}.lua")
    return text[text.index("--[[") : text.index("]]")]


def _entries(header: str, kind: str) -> list[tuple[str, bool]]:
    found = [(int(i), rest == "..", n) for k, i, rest, n in _ENTRY.findall(header) if k == kind]
    assert [i for i, _, _ in found] == list(range(1, len(found) + 1)), f"{kind} not 1..n"
    return [(n, rest) for _, rest, n in found]


def test_every_script_has_one_wrapper() -> None:
    files = sorted(p.name[:-4] for p in _LUA.iterdir() if p.name.endswith(".lua"))
    assert sorted(w.name for w in WRAPPERS) == files


@pytest.mark.parametrize("wrapper", WRAPPERS, ids=lambda w: w.name)
def test_keys_match_the_header(wrapper: ScriptBase[object]) -> None:
    header = _entries(_header(wrapper.name), "KEYS")
    assert [n for n, _ in header] == list(wrapper.keys)
    assert not any(rest for _, rest in header)
    fixed = {f.name for f in dataclasses.fields(QueueKeys)}
    # Names that are not queue keys are supplied by each call (a state's index).
    assert {n for n in wrapper.keys if n not in fixed} <= {"index"}


@pytest.mark.parametrize("wrapper", WRAPPERS, ids=lambda w: w.name)
def test_argv_matches_the_header(wrapper: ScriptBase[object]) -> None:
    header = _entries(_header(wrapper.name), "ARGV")
    assert header[:2] == [("prefix", False), ("config", False)]
    named = [n + ("..." if rest else "") for n, rest in header[2:]]
    assert named == list(wrapper.argv)
    # Only the last may take the rest.
    assert all(not rest for _, rest in header[:-1])


@pytest.mark.parametrize("wrapper", WRAPPERS, ids=lambda w: w.name)
def test_codes_in_the_header_exist(wrapper: ScriptBase[object]) -> None:
    header = _header(wrapper.name)
    returns = header[header.index("Returns") :].split("\n\n")[0]
    known = {m.name for enum in (Status, *wrapper.codes) for m in enum}
    assert set(_CODE.findall(returns)) - {"JSON", "HGETALL"} <= known


@pytest.mark.parametrize("wrapper", WRAPPERS, ids=lambda w: w.name)
def test_every_constant_the_script_names_is_defined(wrapper: ScriptBase[object]) -> None:
    # An undefined name is nil in Lua, not an error: a misspelt code would be returned
    # as nil and read as something else.
    text = wrapper.text()
    code = re.sub(r"--[^\n]*|'[^'\n]*'", "", text[text.index("]]") + 2 :])
    defined = set()
    for names in re.findall(r"^\s*local ([A-Z_][A-Z_, ]*?) =", code, re.MULTILINE):
        defined |= {n.strip() for n in names.split(",")}
    assert set(_CODE.findall(code)) - {"KEYS", "ARGV"} <= defined


def test_the_scripts_read_exactly_the_configuration() -> None:
    read_names = set()
    for wrapper in WRAPPERS:
        read_names |= set(re.findall(r"\bcfg\.(\w+)", wrapper.text()))
    fields = {f.name for f in dataclasses.fields(ScriptConfig)}
    assert read_names == fields


def test_includes_exist_are_used_and_close_over_nothing() -> None:
    includes = {p.name[:-4] for p in _LUA.joinpath("includes").iterdir()}
    asked: set[str] = set()
    texts = [read(f"{w.name}.lua") for w in WRAPPERS] + [
        read(f"includes/{name}.lua") for name in includes
    ]
    for text in texts:
        asked |= set(re.findall(r"^-- @include (\w+)$", text, re.MULTILINE))
    assert asked - _GENERATED == includes
    for name in includes:
        text = read(f"includes/{name}.lua")
        assert "KEYS[" not in text and "ARGV[" not in text, name
        # prefix and cfg are the including script's locals: an include takes them as
        # parameters of each function that uses them.
        for params, body in re.findall(
            r"local function \w+\(([^)]*)\)(.*?)\nend\n", text, re.DOTALL
        ):
            for local in ("prefix", "cfg"):
                if re.search(rf"\b{local}\b", body):
                    assert local in [p.strip() for p in params.split(",")], (name, local)


def test_each_include_is_spliced_once() -> None:
    for wrapper in WRAPPERS:
        text = wrapper.text()
        assert "@include" not in text
        functions = re.findall(r"^local function (\w+)", text, re.MULTILINE)
        assert len(functions) == len(set(functions)), wrapper.name

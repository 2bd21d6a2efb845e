"""A Lua script's KEYS/ARGV header as names, and the checks that hold a package's headers
against its wrappers (the upload store's, the webhooks')."""

from __future__ import annotations

import dataclasses
import json
import re
from importlib import resources
from typing import Any

from notigate.queue.scripts.base import ScriptBase

_ENTRY = re.compile(r"^\s*(KEYS|ARGV)\[(\d+)(\.\.)?\]\s+(\w+)", re.MULTILINE)


def header_names(text: str, kind: str) -> list[str]:
    """The names the header of script ``text`` gives its ``kind`` ("KEYS" or "ARGV"), in
    order, numbered from 1 without a hole; a last "ARGV[n..]" reads "name..."."""
    header = text[text.index("--[[") : text.index("]]")]
    found = [
        (int(i), n + ("..." if rest else ""))
        for k, i, rest, n in _ENTRY.findall(header)
        if k == kind
    ]
    assert [i for i, _ in found] == list(range(1, len(found) + 1))
    return [n for _, n in found]


def lua_names(package: str) -> list[str]:
    """The scripts of ``package``'s lua folder, by name, sorted (includes are not scripts)."""
    folder = resources.files(package).joinpath("lua")
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".lua"))


def assert_header_matches(wrapper: ScriptBase[Any], text: str, key_fields: type) -> None:
    """The header of script ``text`` names the KEYS and ARGV ``wrapper`` passes, in its
    order (ARGV after prefix and config; "name..." for ARGV[n..]), and every key is a
    field of the keys dataclass ``key_fields``."""
    assert header_names(text, "KEYS") == list(wrapper.keys)
    assert header_names(text, "ARGV") == ["prefix", "config", *wrapper.argv]
    assert {f.name for f in dataclasses.fields(key_fields)} >= set(wrapper.keys)


def assert_names_only_what_it_defines(wrapper: ScriptBase[Any], config: str) -> None:
    """The spliced script has no include left, names only constants it defines (the
    includes' codes and states), and reads only fields of ``config`` (its packed JSON)."""
    text = wrapper.text()
    assert "@include" not in text
    code = re.sub(r"--[^\n]*|'[^'\n]*'", "", text[text.index("]]") + 2 :])
    defined = set()
    for names in re.findall(r"^\s*local ([A-Z_][A-Z_, ]*?) =", code, re.MULTILINE):
        defined |= {n.strip() for n in names.split(",")}
    assert set(re.findall(r"\b[A-Z][A-Z_]{2,}\b", code)) - {"KEYS", "ARGV"} <= defined
    assert set(re.findall(r"\bcfg\.(\w+)", text)) <= set(json.loads(config))


def assert_includes_close_over_nothing(package: str, params: tuple[str, ...]) -> None:
    """``package``'s includes read no KEYS or ARGV, and each function that uses one of
    ``params`` takes it as a parameter (an include cannot see a script's locals)."""
    for path in resources.files(package).joinpath("lua", "includes").iterdir():
        text = path.read_text()
        assert "KEYS[" not in text and "ARGV[" not in text, path.name
        for names, body in re.findall(
            r"local function \w+\(([^)]*)\)(.*?)\nend\n", text, re.DOTALL
        ):
            for local in params:
                if re.search(rf"\b{local}\b", body):
                    assert local in [p.strip() for p in names.split(",")], path.name

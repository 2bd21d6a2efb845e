"""The text of a script: its ``.lua`` file with its includes spliced in.

``-- @include <name>`` splices ``lua/includes/<name>.lua`` in, once per script however many
includes ask for it, and before the first line that asks (an include may include others);
``-- @include uploads:<name>`` takes it from the upload store's package, which owns the
keys it touches.
Each include holds one function or one small family and takes what it needs as
parameters, so it depends on no local of the script it lands in. Two includes are made
here rather than read from a file, so that Python and Lua share one table each:
``states`` (the job states' letters, :data:`~notigate.queue.records.STATE_LETTERS`) and
``codes`` (the result codes the script's wrapper declares, :mod:`.status`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from enum import IntEnum
from functools import cache
from importlib import resources

from notigate.queue.records import STATE_LETTERS
from notigate.queue.scripts.status import Status

_INCLUDE = re.compile(r"^-- @include ([\w:]+)\n", re.MULTILINE)
QUEUE_PACKAGE = "notigate.queue.scripts"
# Packages whose includes a script may name as "<package>:<include>".
_PACKAGES = {"queue": QUEUE_PACKAGE, "uploads": "notigate.uploads"}


def read(relative: str, package: str = QUEUE_PACKAGE) -> str:
    """A file under ``package``'s ``lua/`` as written (no include spliced in)."""
    root = resources.files(package).joinpath("lua")
    return root.joinpath(relative).read_text(encoding="utf-8")


def constants(pairs: Iterable[tuple[str, str]], why: str) -> str:
    """Lua locals named and valued by ``pairs``."""
    names, values = zip(*pairs, strict=True)
    return f"-- {why}\nlocal {', '.join(names)} = {', '.join(values)}\n"


def code_constants(enums: Iterable[type[IntEnum]], why: str) -> str:
    """Every member of ``enums`` as a Lua constant."""
    return constants(((m.name, str(int(m))) for enum in enums for m in enum), why)


def _generated(name: str, codes: tuple[type[IntEnum], ...]) -> str | None:
    if name == "states":
        return constants(
            ((state.name, f"'{letter}'") for state, letter in STATE_LETTERS.items()),
            "Job states as stored in the job hash's `s` field (notigate.queue.records).",
        )
    if name == "codes":
        return code_constants(
            (Status, *codes), "Result codes (notigate.queue.scripts: Status and the wrapper's own)."
        )
    return None


def splice(name: str, package: str, generated: Callable[[str], str | None]) -> str:
    """Script ``name`` of ``package`` with its includes spliced in: ``generated`` makes
    the includes that are not files (None for the others)."""
    done: set[str] = set()

    def expand(text: str, home: str) -> str:
        def one(match: re.Match[str]) -> str:
            include = match.group(1)
            if include in done:
                return ""
            done.add(include)
            made = generated(include)
            if made is not None:
                return made
            where, _, file = include.rpartition(":")
            owner = _PACKAGES[where] if where else home
            return expand(read(f"includes/{file}.lua", owner), owner) + "\n"

        return _INCLUDE.sub(one, text)

    return expand(read(f"{name}.lua", package), package)


@cache
def source(name: str, codes: tuple[type[IntEnum], ...] = ()) -> str:
    """The full text of script ``name``; ``codes`` are its own result enums (read once
    per process: every Queue registers every script)."""
    return splice(name, QUEUE_PACKAGE, lambda include: _generated(include, codes))


@cache
def package_source(package: str, name: str, codes: tuple[type[IntEnum], ...] = ()) -> str:
    """The full text of script ``name`` of another package with scripts of its own (the
    upload store, the webhooks): ``codes``, its result enums, are its only generated
    include."""

    def generated(include: str) -> str | None:
        if include == "codes":
            return code_constants(codes, f"Result codes ({package}.scripts).")
        return None

    return splice(name, package, generated)

"""The text of a script: its ``.lua`` file with its includes spliced in.

``-- @include <name>`` splices ``lua/includes/<name>.lua`` in, once per script however many
includes ask for it, and before the first line that asks (an include may include others).
Each include holds one function or one small family and takes what it needs as
parameters, so it depends on no local of the script it lands in. Two includes are made
here rather than read from a file, so that Python and Lua share one table each:
``states`` (the job states' letters, :data:`~notigate.queue.records.STATE_LETTERS`) and
``codes`` (the result codes the script's wrapper declares, :mod:`.status`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import IntEnum
from functools import cache
from importlib import resources

from notigate.queue.records import STATE_LETTERS
from notigate.queue.scripts.status import Status

_INCLUDE = re.compile(r"^-- @include (\w+)\n", re.MULTILINE)


def read(relative: str) -> str:
    """A file under ``lua/`` as written (no include spliced in)."""
    root = resources.files("notigate.queue.scripts").joinpath("lua")
    return root.joinpath(relative).read_text(encoding="utf-8")


def _constants(pairs: Iterable[tuple[str, str]], why: str) -> str:
    names, values = zip(*pairs, strict=True)
    return f"-- {why}\nlocal {', '.join(names)} = {', '.join(values)}\n"


def _generated(name: str, codes: tuple[type[IntEnum], ...]) -> str | None:
    if name == "states":
        return _constants(
            ((state.name, f"'{letter}'") for state, letter in STATE_LETTERS.items()),
            "Job states as stored in the job hash's `s` field (notigate.queue.records).",
        )
    if name == "codes":
        enums: tuple[type[IntEnum], ...] = (Status, *codes)
        return _constants(
            ((m.name, str(int(m))) for enum in enums for m in enum),
            "Result codes (notigate.queue.scripts: Status and the wrapper's own).",
        )
    return None


@cache
def source(name: str, codes: tuple[type[IntEnum], ...] = ()) -> str:
    """The full text of script ``name``; ``codes`` are its own result enums (read once
    per process: every Queue registers every script)."""
    done: set[str] = set()

    def splice(text: str) -> str:
        def one(match: re.Match[str]) -> str:
            include = match.group(1)
            if include in done:
                return ""
            done.add(include)
            generated = _generated(include, codes)
            if generated is not None:
                return generated
            return splice(read(f"includes/{include}.lua")) + "\n"

        return _INCLUDE.sub(one, text)

    return splice(read(f"{name}.lua"))

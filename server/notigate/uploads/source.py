"""The text of an upload script: its ``.lua`` file under ``lua/`` with its includes
spliced in, as :mod:`notigate.queue.scripts.source` does for the queue's (which reads
the queue's package only).

``-- @include <name>`` splices ``lua/includes/<name>.lua`` in, once per script, before
the first line that asks; ``codes`` is made here from the wrapper's result enums.
"""

from __future__ import annotations

import re
from enum import IntEnum
from functools import cache
from importlib import resources

_INCLUDE = re.compile(r"^-- @include (\w+)\n", re.MULTILINE)


def read(relative: str) -> str:
    """A file under ``lua/`` as written (no include spliced in)."""
    root = resources.files("notigate.uploads").joinpath("lua")
    return root.joinpath(relative).read_text(encoding="utf-8")


def _codes(codes: tuple[type[IntEnum], ...]) -> str:
    members = [m for enum in codes for m in enum]
    names = ", ".join(m.name for m in members)
    values = ", ".join(str(int(m)) for m in members)
    return f"-- Result codes (notigate.uploads.scripts).\nlocal {names} = {values}\n"


@cache
def source(name: str, codes: tuple[type[IntEnum], ...] = ()) -> str:
    """The full text of script ``name``; ``codes`` are its result enums."""
    done: set[str] = set()

    def splice(text: str) -> str:
        def one(match: re.Match[str]) -> str:
            include = match.group(1)
            if include in done:
                return ""
            done.add(include)
            if include == "codes":
                return _codes(codes)
            return splice(read(f"includes/{include}.lua")) + "\n"

        return _INCLUDE.sub(one, text)

    return splice(read(f"{name}.lua"))

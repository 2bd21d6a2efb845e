"""The text of a webhook script: its ``.lua`` file under ``lua/`` with its includes
spliced in (:func:`notigate.queue.scripts.source.splice`; ``queue:time_ms`` comes from
the queue's package). ``codes`` is made here from the wrapper's result enums.
"""

from __future__ import annotations

from enum import IntEnum
from functools import cache

from notigate.queue.scripts.source import code_constants, splice
from notigate.queue.scripts.source import read as _read

PACKAGE = "notigate.webhooks"


def read(relative: str) -> str:
    """A file under ``lua/`` as written (no include spliced in)."""
    return _read(relative, PACKAGE)


@cache
def source(name: str, codes: tuple[type[IntEnum], ...] = ()) -> str:
    """The full text of script ``name``; ``codes`` are its result enums."""

    def generated(include: str) -> str | None:
        if include == "codes":
            return code_constants(codes, "Result codes (notigate.webhooks.scripts).")
        return None

    return splice(name, PACKAGE, generated)

"""The text of a webhook script: its ``.lua`` file under ``lua/`` with its includes
spliced in (:func:`notigate.queue.scripts.source.package_source`; ``queue:time_ms``
comes from the queue's package).
"""

from __future__ import annotations

from enum import IntEnum

from notigate.queue.scripts.source import package_source
from notigate.queue.scripts.source import read as _read

PACKAGE = "notigate.webhooks"


def read(relative: str) -> str:
    """A file under ``lua/`` as written (no include spliced in)."""
    return _read(relative, PACKAGE)


def source(name: str, codes: tuple[type[IntEnum], ...] = ()) -> str:
    """The full text of script ``name``; ``codes`` are its result enums."""
    return package_source(PACKAGE, name, codes)

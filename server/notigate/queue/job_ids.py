"""Job ids, which name their bot: ``123`` for the default bot (as before there were
several), ``<bot>:123`` for another. The number is the bot's own sequence (enqueue.lua),
so a job id alone finds its queue.
"""

from __future__ import annotations

import re

from notigate.config import BOT_NAME, DEFAULT_BOT

# A well-formed job id: an optional bot name and ':', then the number (decimal, no leading
# zero, at most 20 digits: a uint64). Explicit ASCII classes: Python's \d also matches
# non-ASCII digits.
JOB_ID = re.compile(rf"(?:(?P<bot>{BOT_NAME.pattern}):)?(?P<number>[1-9][0-9]{{0,19}})")


def id_prefix(bot: str) -> str:
    """What the job ids of ``bot`` start with."""
    return "" if bot == DEFAULT_BOT else f"{bot}:"


def bot_of(job_id: str) -> str:
    """The bot a job id names (the id's shape is checked elsewhere: validation)."""
    bot, sep, _ = job_id.rpartition(":")
    return bot if sep else DEFAULT_BOT


def number_of(job_id: str) -> int | None:
    """The id's sequence number (None: not a job id's shape)."""
    match = JOB_ID.fullmatch(job_id)
    return int(match["number"]) if match else None

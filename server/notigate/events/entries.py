"""One stream entry as the API's ``pb.Event`` (fields: see includes/events.lua)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from notigate.job_views import KIND_TO_PB, STATE_TO_PB, timestamp
from notigate.queue.job_ids import bot_of
from notigate.queue.records import STATE_OF_LETTER, JobKind, message_ids_of, stored_int, stored_text
from notigate_client import pb

__all__ = ["event_of_entry", "is_cursor"]

# A stream entry id: milliseconds, a dash, a sequence number.
_CURSOR = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")


def is_cursor(text: str) -> bool:
    """Whether ``text`` has the form of an event's cursor (a stream entry id)."""
    return _CURSOR.fullmatch(text) is not None


def event_of_entry(entry_id: bytes | str, fields: Mapping[bytes, bytes]) -> pb.Event:
    """The event that the stream holds as ``entry_id`` with ``fields``."""
    cursor = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    job_id = stored_text(fields.get(b"j"))
    event = pb.Event(
        cursor=cursor,
        job_id=job_id,
        bot=bot_of(job_id),
        state=STATE_TO_PB[STATE_OF_LETTER[stored_text(fields.get(b"s"))]],
        chat_id=stored_text(fields.get(b"c")),
        attempts=stored_int(fields.get(b"a")),
        error=stored_text(fields.get(b"e")),
        telegram_message_id=stored_int(fields.get(b"m")),
        kind=KIND_TO_PB[JobKind(stored_text(fields.get(b"k")))],
        telegram_message_ids=message_ids_of(stored_text(fields.get(b"ms"))),
    )
    event.time.CopyFrom(timestamp(stored_int(fields.get(b"t"))))
    return event

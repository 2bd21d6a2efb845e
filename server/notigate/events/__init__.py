"""The queue's event stream: every job state change, as the scripts append it.

The scripts write it (``queue/scripts/lua/includes/events.lua``); this package reads it:
:mod:`.entries` turns a stream entry into a ``pb.Event``, :mod:`.stream` reads pages of
entries after a cursor and says when some were trimmed first (a gap), and
:mod:`.watch` serves WatchEvents from it.
"""

from notigate.events.entries import event_of_entry, is_cursor
from notigate.events.stream import EventPage, EventStream

__all__ = ["EventPage", "EventStream", "event_of_entry", "is_cursor"]

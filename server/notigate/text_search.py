"""SearchJobs' text match: a request's texts, the exact check (case folded), and the
byte-level prefilter a script can run on the stored payload without decoding it.

The payload is a serialized SendRequest, whose strings are UTF-8 bytes as given, so a
text is a run of the payload's bytes. Redis's Lua lowercases ASCII only; the prefilter
therefore looks for the longest ASCII run of the folded needle in the lowercased payload,
and also lets through any payload holding one of the few non-ASCII characters whose case
folding yields an ASCII letter of that run (``ß`` folds to ``ss``): it never misses a job
the exact check would keep.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from notigate_client import pb

__all__ = ["FOLDS_TO_ASCII", "TextQuery", "texts_of"]

# Every non-ASCII character whose casefold() holds ASCII characters, and those characters
# (tests/test_search.py recomputes it over every code point).
FOLDS_TO_ASCII: dict[str, str] = {
    "\u00df": "s",  # ß
    "\u0130": "i",  # İ
    "\u0149": "n",  # ŉ
    "\u017f": "s",  # long s
    "\u01f0": "j",  # ǰ
    "\u1e96": "h",  # ẖ
    "\u1e97": "t",  # ẗ
    "\u1e98": "w",  # ẘ
    "\u1e99": "y",  # ẙ
    "\u1e9a": "a",  # ẚ
    "\u1e9e": "s",  # ẞ
    "\u212a": "k",  # K (Kelvin sign)
    "\ufb00": "f",  # ﬀ
    "\ufb01": "fi",  # ﬁ
    "\ufb02": "fl",  # ﬂ
    "\ufb03": "fi",  # ﬃ
    "\ufb04": "fl",  # ﬄ
    "\ufb05": "st",  # ﬅ
    "\ufb06": "st",  # ﬆ
}
_ASCII_RUN = re.compile(r"[\x00-\x7f]+")


def texts_of(request: pb.SendRequest) -> list[str]:
    """What a search by text looks at: the text (a media message's caption) and every
    album item's caption."""
    return [request.text, *(item.caption for item in request.media_group.items)]


@dataclass(frozen=True, slots=True)
class TextQuery:
    """A search for ``text`` (case-insensitive substring); empty matches everything."""

    text: str

    @property
    def folded(self) -> str:
        return self.text.casefold()

    def matches(self, payload: bytes) -> bool:
        """Whether the stored request ``payload`` holds the text (exact check)."""
        if not self.text:
            return True
        needle = self.folded
        request = pb.SendRequest.FromString(payload)
        return any(needle in t.casefold() for t in texts_of(request))

    def prefilter(self) -> tuple[bytes, list[bytes]]:
        """(needle, extra) for search.lua: the folded text's longest ASCII run, and the
        UTF-8 of the characters that fold into its letters (empty needle: no prefilter)."""
        runs = _ASCII_RUN.findall(self.folded) if self.text else []
        if not runs:
            return b"", []
        run = max(runs, key=len)
        extra = [c.encode() for c, folds in FOLDS_TO_ASCII.items() if set(folds) & set(run)]
        return run.encode(), extra

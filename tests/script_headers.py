"""A Lua script's KEYS/ARGV header as names, for the tests that hold a package's headers
against its wrappers (the upload store's, the webhooks')."""

from __future__ import annotations

import re

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

"""Logging setup: readable lines by default, one JSON object per line as an option.

Extra fields given as ``log.info(..., extra={"job_id": ..., "elapsed_ms": ...})`` become
``key=value`` suffixes in text and keys in JSON. Every record passes :class:`RedactSecrets`
on the handler, so the bot token and API tokens never reach the output, whichever library
logged them (PTB and aiohttp put the token inside request URLs).

Much of what gets logged comes from strangers (method paths, metadata, chat ids,
Telegram's error descriptions), so neither format lets a record forge another line or
reach the terminal: text lines show control and other non-printable characters as
backslash escapes (``\\n``, ``\\x1b``, ``\\u202e``) and quote extra values that contain
spaces; JSON escapes them as ``\\uXXXX``. A traceback keeps its line breaks, indented by
two spaces, so that every line starting in column 0 is a record.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = [
    "EXTRA_FIELDS",
    "JsonFormatter",
    "RedactSecrets",
    "TextFormatter",
    "escape",
    "setup_logging",
]

REDACTED = "<redacted>"
# The extra fields the package logs; only these are copied from a record, so that
# LogRecord internals never leak into the output.
EXTRA_FIELDS = (
    "job_id",
    "chat_id",
    "new_chat_id",
    "message_id",
    "elapsed_ms",
    "attempt",
    "outcome",
    "pause_ms",
    "orphaned",
    "queue",
    "data_loss",
)
# Libraries that log request URLs (with the token) at DEBUG/INFO.
# Request URLs contain the bot token; grpc logs every event loop lookup at DEBUG.
_NOISY = ("httpx", "telegram", "aiohttp.access", "grpc._cython.cygrpc")


class RedactSecrets(logging.Filter):
    """Replaces each secret with ``<redacted>`` in the message, arguments, extras and traceback."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        for name in EXTRA_FIELDS:
            value = record.__dict__.get(name)
            if isinstance(value, str):
                setattr(record, name, self.redact(value))
        return True


_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(char: str) -> str:
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape(text: str) -> str:
    """``text`` on one line and inert in a terminal: non-printables as backslash escapes."""
    if text.isprintable():  # the common case, and cheap
        return text
    return "".join(c if c.isprintable() else _escape_char(c) for c in text)


def _indented(text: str) -> str:
    # Indented, so that only a record starts in column 0: an exception message with a
    # line break (from a stranger's input) cannot pass for a record of its own.
    return "\n".join("  " + escape(line) for line in text.split("\n"))


def _field(value: Any) -> str:
    text = escape(str(value))
    # Quoted when a space or quote could make one value read as several key=value fields.
    if " " in text or '"' in text or not text:
        return '"' + text.replace('"', '\\"') + '"'
    return text


# What json.dumps(ensure_ascii=False) leaves raw: DEL, C1 controls, separators, format chars.
_JSON_UNSAFE = re.compile(r"[^\x00-\x7e]|\x7f")


def _json_escape(match: re.Match[str]) -> str:
    char = match.group()
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {name: record.__dict__[name] for name in EXTRA_FIELDS if name in record.__dict__}


class TextFormatter(logging.Formatter):
    """``2024-05-01 12:00:00,123 INFO    notigate.dispatcher: message key=value``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)  # cached, as the base does
        # A copy: other handlers (a test's capture) see the record as it was logged.
        clean = logging.makeLogRecord(record.__dict__)
        clean.msg, clean.args, clean.exc_info = escape(record.getMessage()), None, None
        clean.exc_text = _indented(record.exc_text) if record.exc_text else None
        clean.stack_info = _indented(record.stack_info) if record.stack_info else None
        line = super().format(clean)
        extras = _extras(record)
        if not extras:
            return line
        head, sep, tail = line.partition("\n")  # keep a traceback below the fields
        fields = " ".join(f"{k}={_field(v)}" for k, v in extras.items())
        return f"{head} {fields}{sep}{tail}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        # Valid JSON still: these characters can only stand inside its strings.
        return _JSON_UNSAFE.sub(_json_escape, json.dumps(entry, ensure_ascii=False, default=str))


def setup_logging(
    level: str = "info",
    fmt: str = "text",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """Configure the root logger with one handler on ``stream`` (stderr); returns it.

    ``fmt`` is "text" or "json"; ``secrets`` are replaced by ``<redacted>`` in every record.
    Replaces the handler of an earlier call, so it can be called again.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    # Only our own earlier handler goes: others (pytest's capture) stay attached.
    for old in [h for h in root.handlers if getattr(h, "_notigate", False)]:
        root.removeHandler(old)
    handler._notigate = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # Defence in depth besides the filter: these libraries log URLs on every request.
    if root.level > logging.DEBUG:
        for noisy in _NOISY:
            logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler

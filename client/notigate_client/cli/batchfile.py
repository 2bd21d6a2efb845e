"""Reading ``notigate send-file`` input (CSV with a header, or JSONL) and a progress bar.

Each row or line holds SendRequest fields by their proto names (``chat_id``, ``text``,
``priority``...). Besides the proto JSON forms, values may use the CLI's spellings:
``parse_mode`` "HTML"/"MarkdownV2"/"Markdown", ``delay`` "500ms"/"10s"/"2m"/"1h", booleans
"1"/"true"/"yes". In CSV, message fields (``reply_markup``, ``link_preview``) are JSON text.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor

from notigate_client import pb

_PARSE_MODES = {"HTML": "PARSE_MODE_HTML", "MarkdownV2": "PARSE_MODE_MARKDOWN_V2"}
_PARSE_MODES["Markdown"] = "PARSE_MODE_MARKDOWN"
_DURATION = re.compile(r"(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h)?")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_FIELDS = pb.SendRequest.DESCRIPTOR.fields_by_name


class BatchFileError(ValueError):
    """A record cannot be turned into a SendRequest; the message names its line."""


def parse_duration_s(text: str) -> float:
    """``"10s"`` -> 10.0; also ``ms``, ``m``, ``h``; a bare number is seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 500ms, 10s, 2m, 1h)")
    return float(match["n"]) * _UNIT_S[match["unit"]]


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _normalize(record: dict[str, Any], from_csv: bool) -> dict[str, Any]:
    """Rewrite the CLI spellings into proto JSON; leave anything else to the parser."""
    out: dict[str, Any] = {}
    for name, value in record.items():
        if from_csv and value == "":
            continue  # an empty cell means "not set"
        field = _FIELDS.get(name)
        if field is None or not isinstance(value, str):
            out[name] = value
        elif name == "parse_mode":
            out[name] = _PARSE_MODES.get(value, value)
        elif name == "delay":
            out[name] = f"{parse_duration_s(value):.3f}s"
        elif field.type == FieldDescriptor.TYPE_BOOL:
            out[name] = _bool(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE and from_csv:
            out[name] = json.loads(value)
        else:
            out[name] = value
    return out


@dataclass(frozen=True, slots=True)
class Record:
    """One message of the file and where it came from."""

    line: int
    request: pb.SendRequest


def _records(text: str, jsonl: bool) -> Iterator[tuple[int, dict[str, Any]]]:
    if jsonl:
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise BatchFileError(f"line {number}: not JSON: {exc}") from exc
                if not isinstance(data, dict):
                    raise BatchFileError(f"line {number}: expected a JSON object")
                yield number, data
        return
    reader = csv.DictReader(io.StringIO(text, newline=""))
    for row in reader:
        if None in row:
            raise BatchFileError(f"line {reader.line_num}: more cells than header columns")
        yield reader.line_num, dict(row)


def read_batch_file(path: Path, *, derive_keys: bool = True) -> list[Record]:
    """All messages in ``path``: JSONL when it ends in .jsonl/.ndjson, else CSV with a header.

    With ``derive_keys``, a record without an ``idempotency_key`` gets one made of the file's
    hash and its line, so running the same file again (after a failure midway) does not send
    what was already accepted in the last 24 hours.
    """
    raw = path.read_bytes()
    jsonl = path.suffix.lower() in (".jsonl", ".ndjson")
    digest = hashlib.sha256(raw).hexdigest()[:16]
    records: list[Record] = []
    for line, data in _records(raw.decode("utf-8-sig"), jsonl):
        try:
            request = json_format.ParseDict(_normalize(data, not jsonl), pb.SendRequest())
        except (json_format.ParseError, ValueError) as exc:
            raise BatchFileError(f"line {line}: {exc}") from exc
        if derive_keys and not request.idempotency_key:
            request.idempotency_key = f"file:{digest}:{line}"
        records.append(Record(line, request))
    return records


class Progress:
    """A one-line progress bar on a terminal; one line per update elsewhere (logs, CI)."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.width = width
        self._started = time.monotonic()
        self._tty = self.stream.isatty()

    def update(self, done: int) -> None:
        """Show that ``done`` of ``total`` are through."""
        self.done = done
        share = done / self.total if self.total else 1.0
        filled = int(self.width * share)
        rate = done / max(time.monotonic() - self._started, 1e-9)
        bar = "#" * filled + "." * (self.width - filled)
        line = f"[{bar}] {done}/{self.total} {share:4.0%} {rate:,.0f} msg/s"
        if self._tty:
            self.stream.write(f"\r{line}")
        else:
            self.stream.write(f"{line}\n")
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line on a terminal."""
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()

"""Reading ``notigate send-file`` input (CSV with a header, or JSONL) and a progress bar.

Each row or line holds SendRequest fields by their proto names (``chat_id``, ``text``,
``priority``...). Besides the proto JSON forms, values may use the CLI's spellings:
``parse_mode`` "HTML"/"MarkdownV2"/"Markdown", ``delay`` "500ms"/"10s"/"2m"/"1h", ``send_at``
an ISO 8601 time with an offset, booleans "1"/"true"/"yes". In CSV, message fields
(``reply_markup``, ``link_preview``, ``media``, ``media_group``) are JSON text and an empty
cell means "not set".

A file is named most simply by a column for its kind, ``photo``, ``document``, ``video``,
``animation``, ``audio`` or ``voice``, holding an http(s) URL or a Telegram file_id (``text``
is then its caption and may be left out); a row sets at most one of them. Local files are
not uploaded from a batch file: a rerun would upload them again under new ids, and the
gateway would refuse the rows as changed messages.

Reading never stops at the first bad row: every problem is collected with its line and the
column as the file spells it, so one run shows all that needs fixing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from notigate_client import media, pb
from notigate_client._common import PARSE_MODES
from notigate_client.media import MEDIA_KINDS

_DURATION = re.compile(r"(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h)?")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_DESCRIPTOR = pb.SendRequest.DESCRIPTOR
# A file may name a field as proto does (chat_id) or as proto JSON does (chatId).
_FIELDS: dict[str, FieldDescriptor] = {f.name: f for f in _DESCRIPTOR.fields}
_FIELDS.update({f.json_name: f for f in _DESCRIPTOR.fields})
# A column per media kind (photo, document...): a file's URL or file_id, set as ``media``.
MEDIA_COLUMNS = tuple(MEDIA_KINDS)
KNOWN_COLUMNS = tuple(f.name for f in _DESCRIPTOR.fields) + MEDIA_COLUMNS
REQUIRED_COLUMNS = ("chat_id", "text")
# With a file, text is its caption and may be missing; an album has none.
_FILE_COLUMNS = frozenset({"media", "media_group", *MEDIA_COLUMNS})
_URL_PREFIXES = ("http://", "https://")
_FILE_ID = re.compile(r"[A-Za-z0-9_-]{1,512}")
_INTEGER_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
    }
)
KEY_PREFIX = "sf:"


class BatchFileError(ValueError):
    """The file as a whole cannot be read (not UTF-8, no header, no messages)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the file: its line (1 is a CSV's header), column and message."""

    line: int
    column: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        column = f"{self.column}: " if self.column else ""
        return f"{where}{column}{self.message}"


@dataclass(frozen=True, slots=True)
class Record:
    """One message of the file, where it came from, and the file's spelling of its fields."""

    line: int
    request: pb.SendRequest
    columns: Mapping[str, str]

    def column(self, field_name: str) -> str:
        """The file's name for the SendRequest field ``field_name``."""
        return self.columns.get(field_name, field_name)


@dataclass(slots=True)
class BatchFile:
    """What :func:`read_batch_file` found: the messages that parsed, and every problem."""

    records: list[Record] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    rows: int = 0


def parse_duration_s(text: str) -> float:
    """``"10s"`` -> 10.0; also ``ms``, ``m``, ``h``; a bare number is seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 500ms, 10s, 2m, 1h)")
    return float(match["n"]) * _UNIT_S[match["unit"]]


def parse_time(text: str) -> datetime:
    """An ISO 8601 time with a UTC offset (``2026-12-01T18:00:00Z``, ``...+01:00``).

    A time without an offset is refused rather than guessed: the gateway and the shell that
    wrote the file may not share a time zone.
    """
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"not an ISO 8601 time: {text!r} (use e.g. 2026-12-01T18:00:00Z)"
        ) from None
    if when.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset (add Z or e.g. +01:00)")
    return when


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {value!r} (use true or false)")


def _integer(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise ValueError(f"not an integer: {value!r}")


def _parse_mode(value: Any) -> int:
    if isinstance(value, str):
        name = value.strip()
        if name in PARSE_MODES:
            return PARSE_MODES[name]
        if name in pb.ParseMode.keys():  # noqa: SIM118 (an EnumTypeWrapper, not a dict)
            return pb.ParseMode.Value(name)
    elif isinstance(value, int) and value in pb.ParseMode.values():
        return value
    raise ValueError(f"unknown parse_mode {value!r} (use HTML, MarkdownV2 or Markdown)")


def _set_field(req: pb.SendRequest, fd: FieldDescriptor, value: Any, from_csv: bool) -> None:
    """Set one field of ``req`` from a cell; ValueError says what is wrong with the value."""
    name = fd.name
    if name == "parse_mode":
        req.parse_mode = _parse_mode(value)  # type: ignore[assignment]
    elif name == "delay":
        seconds = float(value) if isinstance(value, int | float) else None
        if seconds is None:
            seconds = parse_duration_s(str(value))
        req.delay.FromNanoseconds(round(seconds * 1e9))
    elif name == "send_at":
        req.send_at.FromDatetime(parse_time(str(value)))
    elif fd.type == FieldDescriptor.TYPE_BOOL:
        setattr(req, name, _bool(value))
    elif fd.type in _INTEGER_TYPES:
        number = _integer(value)
        try:
            setattr(req, name, number)
        except ValueError:
            raise ValueError(f"{number} is out of range") from None
    elif fd.type == FieldDescriptor.TYPE_STRING:
        if name == "chat_id" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # JSONL writers often emit numeric chat ids as numbers
        if not isinstance(value, str):
            raise ValueError(f"expected a string, not {value!r}")
        setattr(req, name, value)
    elif fd.type == FieldDescriptor.TYPE_MESSAGE:
        if from_csv and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not JSON: {exc}") from None
        target: Message = getattr(req, name)
        try:
            json_format.ParseDict(value, target)
        except json_format.ParseError as exc:
            # The first line says what and where; the rest lists protobuf's internal names.
            raise ValueError(str(exc).splitlines()[0]) from None
        # An empty object still marks the field as set, as proto JSON does.
        target.SetInParent()
    else:  # pragma: no cover - SendRequest has no other field types
        json_format.ParseDict({name: value}, req)


def _media_cell(kind: str, value: Any) -> pb.Media:
    """A media column's cell: an http(s) URL or a file_id; ValueError otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected an http(s) URL or a file_id, not {value!r}")
    text = value.strip()
    if text.lower().startswith(_URL_PREFIXES):
        return media(kind, url=text)
    if _FILE_ID.fullmatch(text):
        return media(kind, file_id=text)
    raise ValueError(
        f"{text!r} is neither an http(s) URL nor a file_id (local files are not uploaded "
        "from a batch file: notigate send --photo PATH uploads one)"
    )


def _parse_row(
    line: int, row: Mapping[str, Any], columns: Mapping[str, str], from_csv: bool
) -> tuple[pb.SendRequest | None, list[Problem], Mapping[str, str]]:
    """The SendRequest of one row (or None) and every problem in it, and ``columns`` as
    this row spells its fields (``media`` may be its ``photo`` column)."""
    req = pb.SendRequest()
    problems: list[Problem] = []
    files: list[tuple[str, Any]] = []
    for name, value in row.items():
        if value is None or (from_csv and value == ""):
            continue  # an empty cell, or a cell missing at the end of a short row: not set
        if name in MEDIA_KINDS:
            files.append((name, value))
            continue
        fd = _FIELDS.get(name)
        if fd is None:  # only in JSONL: a CSV's header was checked before
            problems.append(Problem(line, name, _unknown(name)))
            continue
        try:
            _set_field(req, fd, value, from_csv)
        except (ValueError, TypeError) as exc:
            problems.append(Problem(line, columns.get(fd.name, name), str(exc)))
    if files:
        kind, value = files[0]
        if len(files) > 1 or req.HasField("media"):
            others = [k for k, _ in files[1:]] + (["media"] if req.HasField("media") else [])
            problems.append(
                Problem(line, kind, f"one file per row: {', '.join(others)} is set too")
            )
        else:
            try:
                req.media.CopyFrom(_media_cell(kind, value))
            except ValueError as exc:
                problems.append(Problem(line, kind, str(exc)))
            columns = {**columns, "media": kind}
    return (None, problems, columns) if problems else (req, [], columns)


def _unknown(name: str) -> str:
    return f"unknown column {name!r}; known: {', '.join(KNOWN_COLUMNS)}"


def _check_header(header: list[str]) -> tuple[dict[str, str], list[Problem]]:
    """The header's field -> column map, and its problems (all reported at line 1)."""
    columns: dict[str, str] = {}
    problems: list[Problem] = []
    for position, name in enumerate(header, start=1):
        fd = _FIELDS.get(name)
        if not name.strip():
            problems.append(Problem(1, f"column {position}", "has no name"))
        elif name in MEDIA_KINDS:
            if name in columns:
                problems.append(Problem(1, name, "the same column twice"))
            columns[name] = name
        elif fd is None:
            problems.append(Problem(1, name, _unknown(name)))
        elif fd.name in columns:
            problems.append(Problem(1, name, f"the same field as column {columns[fd.name]!r}"))
        else:
            columns[fd.name] = name
    if not problems:
        required: tuple[str, ...] = REQUIRED_COLUMNS
        if _FILE_COLUMNS & set(columns):
            required = tuple(c for c in REQUIRED_COLUMNS if c != "text")
        missing = [c for c in required if c not in columns]
        problems += [Problem(1, c, "missing column: every message needs one") for c in missing]
    return columns, problems


def _jsonl_rows(text: str, out: BatchFile) -> Iterator[tuple[int, dict[str, Any], dict[str, str]]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        out.rows += 1
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            out.problems.append(Problem(number, "", f"not JSON: {exc}"))
            continue
        if not isinstance(data, dict):
            out.problems.append(Problem(number, "", "expected a JSON object"))
            continue
        # Each line may spell a field either way; point at the spelling of this line.
        columns = {_FIELDS[k].name: k for k in data if k in _FIELDS}
        columns.update({k: k for k in data if k in MEDIA_KINDS})
        yield number, data, columns


def _csv_rows(text: str, out: BatchFile) -> Iterator[tuple[int, dict[str, Any], dict[str, str]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise BatchFileError("empty file (a CSV needs a header line naming its columns)")
    columns, problems = _check_header(header)
    if problems:
        # Rows read against a wrong header would only repeat the header's mistake per row.
        out.problems += problems
        return
    width = len(header)
    end = reader.line_num
    for cells in reader:
        # A quoted cell may span lines: a row is where it starts.
        line, end = end + 1, reader.line_num
        if not any(cell.strip() for cell in cells):
            continue  # a blank line
        out.rows += 1
        if len(cells) > width:
            out.problems.append(
                Problem(line, "", f"{len(cells)} cells but the header has {width} columns")
            )
            continue
        yield line, dict(zip(header, cells, strict=False)), columns


def _derive_keys(records: list[Record], fresh: bool) -> list[Problem]:
    """Give each record without an idempotency key one; report keys used twice.

    A derived key is the hash of the message itself plus its occurrence among identical
    messages, so fixing, adding or removing other rows never changes it, and a rerun finds
    every accepted row a duplicate.
    """
    occurrences: Counter[str] = Counter()
    first_line: dict[str, int] = {}
    problems: list[Problem] = []
    for record in records:
        req = record.request
        if not req.idempotency_key:
            if fresh:
                req.idempotency_key = str(uuid.uuid4())
            else:
                # The key is empty here, so it takes no part in the hash.
                digest = hashlib.sha256(req.SerializeToString(deterministic=True)).hexdigest()
                occurrences[digest] += 1
                req.idempotency_key = f"{KEY_PREFIX}{digest[:32]}:{occurrences[digest]}"
        key = req.idempotency_key
        if key in first_line:
            problems.append(
                Problem(
                    record.line,
                    record.column("idempotency_key"),
                    f"the same idempotency_key as line {first_line[key]} "
                    "(this row would never be sent)",
                )
            )
        else:
            first_line[key] = record.line
    return problems


def read_batch_file(path: Path, *, fresh_keys: bool = False) -> BatchFile:
    """All messages in ``path`` and all its problems: JSONL when it ends in .jsonl/.ndjson,
    else CSV with a header.

    Every message gets an idempotency key before anything is sent: the row's own
    ``idempotency_key`` when it has one, else one derived from its content (see
    :func:`_derive_keys`), or a random one with ``fresh_keys``. OSError and
    :class:`BatchFileError` mean the file could not be read at all.
    """
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BatchFileError(f"not UTF-8 text ({exc})") from None
    jsonl = path.suffix.lower() in (".jsonl", ".ndjson")
    out = BatchFile()
    rows = _jsonl_rows(text, out) if jsonl else _csv_rows(text, out)
    for line, row, columns in rows:
        req, problems, spelled = _parse_row(line, row, columns, from_csv=not jsonl)
        if req is None:
            out.problems += problems
        else:
            out.records.append(Record(line, req, spelled))
    out.problems += _derive_keys(out.records, fresh_keys)
    if not out.rows and not out.problems:
        raise BatchFileError("no messages in the file")
    out.problems.sort(key=lambda p: p.line)
    return out


class Progress:
    """A one-line progress bar on a terminal; one line per change elsewhere (logs, CI)."""

    def __init__(
        self,
        total: int,
        stream: TextIO | None = None,
        width: int = 30,
        label: str = "",
    ) -> None:
        self.total = total
        self.done = -1
        self.stream = stream or sys.stderr
        self.width = width
        self.label = label
        self._started = time.monotonic()
        self._tty = self.stream.isatty()

    def update(self, done: int, note: str = "") -> None:
        """Show that ``done`` of ``total`` are through (a repeat of the same count is skipped
        off a terminal, so logs get one line per change)."""
        if done == self.done and not self._tty:
            return
        self.done = done
        share = done / self.total if self.total else 1.0
        filled = int(self.width * share)
        rate = done / max(time.monotonic() - self._started, 1e-9)
        bar = "#" * filled + "." * (self.width - filled)
        line = f"[{bar}] {done}/{self.total} {share:4.0%} {rate:,.0f} msg/s"
        if self.label:
            line += f" {self.label}"
        if note:
            line += f" ({note})"
        if self._tty:
            self.stream.write(f"\r{line}\x1b[K")
        else:
            self.stream.write(f"{line}\n")
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line on a terminal."""
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()

"""Request validation: pure functions from a request to its field violations.

Every validator returns ``list[BadRequest.FieldViolation]``; an empty list means the request
is valid. ``field`` is the proto field path relative to the request (``messages[3].text``,
``reply_markup.rows[0].buttons[1].url``) so a client can point at the offending input, and
:func:`notigate.rpc_status.invalid_argument` turns the list into an INVALID_ARGUMENT status.

The limits mirror the Telegram Bot API (sendMessage, InlineKeyboardMarkup, LinkPreviewOptions)
so that a request accepted here fails at Telegram only for reasons we cannot see in advance
(unknown chat, blocked bot). Texts are parsed in their parse mode by :mod:`notigate.formatting`,
a port of Telegram's own parser, so markup Telegram would refuse is refused here.

A ListJobs page token is checked by decoding it with :mod:`notigate.pagination`, which owns
the token format.
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection
from typing import TypeAlias
from urllib.parse import urlsplit

# googleapis-common-protos ships .pyi files but no py.typed marker, so mypy will not read them.
from google.rpc.error_details_pb2 import BadRequest  # type: ignore[import-untyped,unused-ignore]

from notigate import formatting
from notigate.events.entries import is_cursor
from notigate.media import ALBUM_MAX, ALBUM_MIN, KINDS, MAX_CAPTION_CHARS, album_kinds_problem
from notigate.pagination import JOB_ID, decode_page_token
from notigate.parse_modes import PARSE_MODE_NAMES
from notigate.search_token import Walk, decode_search_token
from notigate.suppression import decode_suppression_token
from notigate_client import pb

__all__ = [
    "MAX_BATCH",
    "MAX_BUTTONS",
    "MAX_BUTTONS_PER_ROW",
    "MAX_DELAY_S",
    "MAX_IDEMPOTENCY_KEY_CHARS",
    "MAX_MAX_ATTEMPTS",
    "MAX_PAGE_SIZE",
    "MAX_PRIORITY",
    "MAX_TEXT_CHARS",
    "MAX_WATCHED_JOBS",
    "FieldViolation",
    "is_chat_id",
    "validate_batch",
    "validate_bulk_filter",
    "validate_job_id",
    "validate_list",
    "validate_list_job_events",
    "validate_list_suppressed",
    "validate_media",
    "validate_search",
    "validate_send",
    "validate_unsuppress",
    "validate_watch",
]

FieldViolation: TypeAlias = BadRequest.FieldViolation

MAX_TEXT_CHARS = formatting.MAX_MESSAGE_LENGTH
MAX_PRIORITY = 10
MAX_DELAY_S = 365 * 24 * 3600
MAX_MAX_ATTEMPTS = 100
MAX_IDEMPOTENCY_KEY_CHARS = 256
MAX_BUTTONS = 100
MAX_BUTTONS_PER_ROW = 8
MAX_CALLBACK_DATA_BYTES = 64
MAX_COPY_TEXT_CHARS = 256
MAX_BATCH = 1000
MAX_PAGE_SIZE = 1000
MAX_MEDIA_URL_CHARS = 2048
MAX_FILENAME_CHARS = 255
# Telegram's file_ids are URL-safe base64; upload ids are UploadFile's own (uploads package).
_FILE_ID = re.compile(r"[A-Za-z0-9_-]{1,512}")
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")

# Explicit ASCII classes: Python's \d and \w also match non-ASCII digits and letters.
_NUMERIC_CHAT_ID = re.compile(r"-?[0-9]{1,20}")
_USERNAME = re.compile(r"@[A-Za-z][A-Za-z0-9_]{4,31}")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

# google.protobuf.Duration's own range (duration.proto): about +-10,000 years.
_DURATION_MAX_S = 315_576_000_000
_NANOS_PER_S = 1_000_000_000
# google.protobuf.Timestamp's own range (timestamp.proto): 0001-01-01 to 9999-12-31.
_TIMESTAMP_MIN_S, _TIMESTAMP_MAX_S = -62_135_596_800, 253_402_300_799


def _v(field: str, description: str) -> FieldViolation:
    return FieldViolation(field=field, description=description)


def _has_lone_surrogate(text: str) -> bool:
    # A str built by protobuf from the wire never has one (upb rejects them), but a str built
    # in Python can, and it would later fail to encode for Telegram.
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _is_web_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced '[' in the host part
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def _is_button_url(url: str) -> bool:
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        return False
    if _is_web_url(url):
        return True
    # tg:// links (tg://user?id=123, tg://resolve?domain=x) have no host in the URL sense.
    return url[:5].lower() == "tg://" and len(url) > 5


def _validate_chat_id(chat_id: str, prefix: str) -> list[FieldViolation]:
    # Field paths are built only on the error paths: this runs for every message.
    if _NUMERIC_CHAT_ID.fullmatch(chat_id):
        value = int(chat_id)
        if value == 0:
            return [_v(f"{prefix}chat_id", "chat_id must not be 0")]
        # Telegram ids fit in 64 bits; a longer number would only fail later, at delivery.
        if not _INT64_MIN <= value <= _INT64_MAX:
            return [_v(f"{prefix}chat_id", "numeric chat_id must fit in a signed 64-bit integer")]
        return []
    if not chat_id:
        return [_v(f"{prefix}chat_id", "chat_id is required")]
    if chat_id.startswith("@"):
        if _USERNAME.fullmatch(chat_id):
            return []
        return [
            _v(
                f"{prefix}chat_id",
                "a channel username must be '@' followed by 5..32 characters A-Z, a-z, 0-9 "
                "or '_', starting with a letter",
            )
        ]
    return [
        _v(
            f"{prefix}chat_id",
            "chat_id must be a numeric chat id (e.g. -1001234567890) or @username",
        )
    ]


def is_chat_id(text: str) -> bool:
    """Whether ``text`` is a chat id SendRequest.chat_id accepts (a number or @username)."""
    return not _validate_chat_id(text, "")


def _validate_text(
    text: str, prefix: str, parse_mode: int = 0, *, caption: bool = False, field: str = "text"
) -> list[FieldViolation]:
    """A message text, or (``caption``) a media caption: may be empty, at most 1024."""
    name = f"{prefix}{field}"
    if not text:
        return [] if caption else [_v(name, "text is required")]
    if _has_lone_surrogate(text):
        return [_v(name, f"{field} contains a lone UTF-16 surrogate")]
    # Telegram parses the markup first and applies its limits to what remains, counted in
    # code points (not UTF-16 units): formatting.check_message_text does both as it does.
    # Violations name a mode as the Bot API does.
    mode = PARSE_MODE_NAMES.get(parse_mode)
    limit = MAX_CAPTION_CHARS if caption else MAX_TEXT_CHARS
    problem = formatting.check_message_text(text, mode, limit=limit, allow_empty=caption)
    if problem is None:
        return []
    after = f" after {mode} parsing" if mode else ""
    if problem.kind == "raw_too_long":
        description = (
            f"text is {problem.size:,} bytes in UTF-8; Telegram accepts at most "
            f"{formatting.MAX_RAW_BYTES:,} before parsing"
        )
    elif problem.error is not None:
        description = (
            f"can't parse {mode} entities: {problem.error.message} "
            f"(character offset {problem.error.offset})"
        )
    elif problem.kind == "empty":
        description = (
            f'text is empty{after}: Telegram says "text must be non-empty"'
            if mode
            else "text must not consist only of whitespace or invisible characters"
        )
    else:
        raw = f" ({len(text):,} raw)" if mode else ""
        description = f"{field} is {problem.size:,} characters{after}{raw}; Telegram allows {limit}"
    return [_v(name, description)]


def _validate_duration(seconds: int, nanos: int, field: str) -> list[FieldViolation]:
    # First the rules of google.protobuf.Duration itself, then ours.
    if not -_NANOS_PER_S < nanos < _NANOS_PER_S:
        return [_v(f"{field}.nanos", "nanos must be within -999,999,999..999,999,999")]
    if (seconds < 0 < nanos) or (nanos < 0 < seconds):
        return [_v(field, "seconds and nanos of a Duration must have the same sign")]
    if not -_DURATION_MAX_S <= seconds <= _DURATION_MAX_S:
        return [_v(f"{field}.seconds", "seconds is outside the range of a Duration")]
    if seconds < 0 or nanos < 0:
        return [_v(field, "delay must not be negative")]
    if seconds > MAX_DELAY_S or (seconds == MAX_DELAY_S and nanos > 0):
        return [_v(field, "delay must be at most 365 days")]
    return []


def _validate_send_at(seconds: int, nanos: int, field: str, now_s: float) -> list[FieldViolation]:
    if not 0 <= nanos < _NANOS_PER_S:
        return [_v(f"{field}.nanos", "nanos must be within 0..999,999,999")]
    if not _TIMESTAMP_MIN_S <= seconds <= _TIMESTAMP_MAX_S:
        return [_v(f"{field}.seconds", "seconds is outside the range of a Timestamp")]
    # A past time means now (a message composed a moment ago is not an error). The upper
    # bound is the one delay has; a few seconds of clock skew do not matter against it.
    if seconds + nanos / _NANOS_PER_S > now_s + MAX_DELAY_S:
        return [_v(field, "send_at must be at most 365 days from now")]
    return []


def _validate_button(button: pb.InlineKeyboardButton, path: str) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    # Telegram documents no maximum for button text, only that it is shown on the button.
    if not button.text or button.text.isspace():
        out.append(_v(f"{path}.text", "button text is required"))
    action = button.WhichOneof("action")
    if action is None:
        out.append(
            _v(
                path,
                "exactly one of url, callback_data, switch_inline_query, "
                "switch_inline_query_current_chat, copy_text must be set",
            )
        )
    elif action == "url":
        if not _is_button_url(button.url):
            out.append(_v(f"{path}.url", "url must be an http://, https:// or tg:// link"))
    elif action == "callback_data":
        size = len(button.callback_data.encode("utf-8", "surrogatepass"))
        if not 1 <= size <= MAX_CALLBACK_DATA_BYTES:
            out.append(
                _v(
                    f"{path}.callback_data",
                    f"callback_data must be 1..{MAX_CALLBACK_DATA_BYTES} bytes in UTF-8, "
                    f"not {size}",
                )
            )
    elif action == "copy_text" and not 1 <= len(button.copy_text) <= MAX_COPY_TEXT_CHARS:
        out.append(
            _v(f"{path}.copy_text", f"copy_text must be 1..{MAX_COPY_TEXT_CHARS} characters")
        )
    # switch_inline_query* may be empty: Telegram then inserts only the bot's username.
    return out


def _validate_markup(markup: pb.InlineKeyboardMarkup, field: str) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    total = sum(len(row.buttons) for row in markup.rows)
    if total > MAX_BUTTONS:
        out.append(
            _v(
                f"{field}.rows",
                f"an inline keyboard has at most {MAX_BUTTONS} buttons in total, got {total}",
            )
        )
    for r, row in enumerate(markup.rows):
        row_path = f"{field}.rows[{r}]"
        if not 1 <= len(row.buttons) <= MAX_BUTTONS_PER_ROW:
            out.append(
                _v(
                    f"{row_path}.buttons",
                    f"a row has 1..{MAX_BUTTONS_PER_ROW} buttons, got {len(row.buttons)}",
                )
            )
        for b, button in enumerate(row.buttons):
            out.extend(_validate_button(button, f"{row_path}.buttons[{b}]"))
    return out


def _validate_link_preview(opts: pb.LinkPreviewOptions, field: str) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    if opts.url and not _is_web_url(opts.url):
        out.append(_v(f"{field}.url", "url must be an http:// or https:// link"))
    if opts.prefer_small_media and opts.prefer_large_media:
        out.append(
            _v(
                f"{field}.prefer_large_media",
                "at most one of prefer_small_media and prefer_large_media may be set",
            )
        )
    return out


def validate_send(
    req: pb.SendRequest, prefix: str = "", now_s: float | None = None
) -> list[FieldViolation]:
    """Validate one message; ``prefix`` is prepended to every field path (``messages[3].``).

    ``now_s`` (default: the clock) bounds ``send_at``.
    """
    p = prefix
    out: list[FieldViolation] = []
    out += _validate_chat_id(req.chat_id, p)
    if req.HasField("media_group"):
        out += _validate_album(req, p)
    else:
        if req.HasField("media"):
            out += validate_media(req.media, f"{p}media")
            if req.HasField("link_preview"):
                out.append(_v(f"{p}link_preview", "link_preview applies to text messages only"))
        out += _validate_text(req.text, p, req.parse_mode, caption=req.HasField("media"))
    if req.parse_mode and req.parse_mode not in PARSE_MODE_NAMES:
        out.append(_v(f"{p}parse_mode", f"unknown parse_mode {req.parse_mode}"))
    if not 0 <= req.priority <= MAX_PRIORITY:
        out.append(_v(f"{p}priority", f"priority must be 0..{MAX_PRIORITY}"))
    if req.HasField("delay"):
        out += _validate_duration(req.delay.seconds, req.delay.nanos, f"{p}delay")
    if req.HasField("send_at"):
        if req.HasField("delay"):
            out.append(_v(f"{p}send_at", "set at most one of send_at and delay"))
        else:
            now = time.time() if now_s is None else now_s
            out += _validate_send_at(req.send_at.seconds, req.send_at.nanos, f"{p}send_at", now)
    if req.message_thread_id < 0:
        out.append(_v(f"{p}message_thread_id", "message_thread_id must not be negative"))
    if not 0 <= req.max_attempts <= MAX_MAX_ATTEMPTS:
        out.append(
            _v(
                f"{p}max_attempts",
                f"max_attempts must be 0..{MAX_MAX_ATTEMPTS} (0 = server default)",
            )
        )
    key = req.idempotency_key
    if len(key) > MAX_IDEMPOTENCY_KEY_CHARS:
        out.append(
            _v(
                f"{p}idempotency_key",
                f"idempotency_key must be at most {MAX_IDEMPOTENCY_KEY_CHARS} characters",
            )
        )
    elif not key.isprintable():
        # Keys end up in Redis key names and logs; control characters there only cause harm.
        out.append(_v(f"{p}idempotency_key", "idempotency_key must be printable"))
    if req.HasField("reply_markup"):
        out += _validate_markup(req.reply_markup, f"{p}reply_markup")
    if req.HasField("link_preview"):
        out += _validate_link_preview(req.link_preview, f"{p}link_preview")
    return out


def validate_media(media: pb.Media, field: str) -> list[FieldViolation]:
    """One file: a known kind, exactly one source, options its kind allows."""
    out: list[FieldViolation] = []
    info = KINDS.get(media.kind)
    if info is None:
        names = ", ".join(pb.MediaKind.Name(pb.MediaKind.ValueType(k)) for k in KINDS)
        out.append(_v(f"{field}.kind", f"kind is required: one of {names}"))
    source = media.WhichOneof("source")
    if source is None:
        out.append(_v(field, "set one of url, file_id and upload_id"))
    elif source == "url":
        if not _is_web_url(media.url):
            out.append(_v(f"{field}.url", "url must be an http:// or https:// link"))
        elif len(media.url) > MAX_MEDIA_URL_CHARS:
            out.append(_v(f"{field}.url", f"url must be at most {MAX_MEDIA_URL_CHARS} characters"))
    elif source == "file_id":
        if not _FILE_ID.fullmatch(media.file_id):
            out.append(
                _v(f"{field}.file_id", "file_id must be a Telegram file_id (letters, digits, - _)")
            )
    elif not _UPLOAD_ID.fullmatch(media.upload_id):
        out.append(_v(f"{field}.upload_id", "upload_id must be an id UploadFile returned"))
    if media.filename:
        out += _validate_filename(media.filename, f"{field}.filename")
    if info is not None and not info.visual:
        for flag in ("has_spoiler", "show_caption_above_media"):
            if getattr(media, flag):
                out.append(
                    _v(f"{field}.{flag}", f"{flag} applies to photos, videos and animations")
                )
    return out


def _validate_filename(name: str, field: str) -> list[FieldViolation]:
    if len(name) > MAX_FILENAME_CHARS:
        return [_v(field, f"filename must be at most {MAX_FILENAME_CHARS} characters")]
    if "/" in name or "\\" in name or not name.isprintable() or name in (".", ".."):
        return [_v(field, "filename must be a plain printable name without path separators")]
    return []


def _validate_album(req: pb.SendRequest, p: str) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    if req.HasField("media"):
        out.append(_v(f"{p}media_group", "set at most one of media and media_group"))
    if req.text:
        out.append(_v(f"{p}text", "text must be empty with media_group: each item has a caption"))
    if req.HasField("reply_markup"):
        out.append(_v(f"{p}reply_markup", "an album carries no reply_markup (Telegram drops it)"))
    if req.HasField("link_preview"):
        out.append(_v(f"{p}link_preview", "link_preview applies to text messages only"))
    items = req.media_group.items
    if not ALBUM_MIN <= len(items) <= ALBUM_MAX:
        out.append(
            _v(
                f"{p}media_group.items",
                f"an album has {ALBUM_MIN}..{ALBUM_MAX} items, got {len(items)}",
            )
        )
    for i, item in enumerate(items):
        at = f"{p}media_group.items[{i}]"
        out += validate_media(item.media, f"{at}.media")
        info = KINDS.get(item.media.kind)
        if info is not None and not info.in_albums:
            out.append(
                _v(f"{at}.media.kind", "albums hold photos, videos, documents and audios only")
            )
        out += _validate_text(item.caption, f"{at}.", req.parse_mode, caption=True, field="caption")
    problem = album_kinds_problem([item.media.kind for item in items])
    if problem is not None:
        out.append(_v(f"{p}media_group.items", problem))
    if len({item.media.show_caption_above_media for item in items}) > 1:
        out.append(
            _v(
                f"{p}media_group.items",
                "show_caption_above_media must be the same for every item",
            )
        )
    return out


def validate_batch(req: pb.SendBatchRequest, max_batch: int = MAX_BATCH) -> list[FieldViolation]:
    """Validate a batch: 1..``max_batch`` messages, each valid, idempotency keys unique."""
    n = len(req.messages)
    if n == 0:
        return [_v("messages", "a batch needs at least one message")]
    if n > max_batch:
        # Validating every message of an oversized batch would only produce a longer error;
        # the caller has to split it anyway.
        return [_v("messages", f"a batch has at most {max_batch} messages, got {n}")]
    out: list[FieldViolation] = []
    first_with_key: dict[str, int] = {}
    now_s = time.time()
    for i, msg in enumerate(req.messages):
        out += validate_send(msg, prefix=f"messages[{i}].", now_s=now_s)
        key = msg.idempotency_key
        if not key:
            continue
        if key in first_with_key:
            # Two messages with one key would collapse into one job: surely a caller bug.
            out.append(
                _v(
                    f"messages[{i}].idempotency_key",
                    f"duplicates messages[{first_with_key[key]}].idempotency_key",
                )
            )
        else:
            first_with_key[key] = i
    return out


def validate_job_id(job_id: str, field: str = "job_id") -> list[FieldViolation]:
    """Validate the shape of a job id (1..20 digits, no leading zero, after a bot name
    and a colon for a bot other than the default).

    A well-formed id that names no job is valid here; it is NOT_FOUND at lookup.
    """
    if not job_id:
        return [_v(field, f"{field} is required")]
    if not JOB_ID.fullmatch(job_id):
        return [
            _v(
                field,
                f"{field} must be a job id as returned by Send (a number, or <bot>:<number>)",
            )
        ]
    return []


def validate_bulk_filter(
    flt: pb.JobFilter, states: Collection[int], field: str = "filter"
) -> list[FieldViolation]:
    """Validate a RetryJobs/CancelJobs filter: ``state`` unset or one of ``states``,
    ``chat_id`` empty (every chat) or a chat id as Send takes it."""
    out: list[FieldViolation] = []
    if flt.state and flt.state not in states:
        names = " or ".join(pb.JobState.Name(s) for s in sorted(states))  # type: ignore[arg-type]
        known = flt.state in pb.JobState.values()
        got = pb.JobState.Name(flt.state) if known else str(flt.state)
        out.append(_v(f"{field}.state", f"state must be {names} (or unset), not {got}"))
    if flt.chat_id:
        out += _validate_chat_id(flt.chat_id, f"{field}.")
    return out


# The most job ids one WatchEvents may filter on.
MAX_WATCHED_JOBS = 1000


def validate_watch(req: pb.WatchEventsRequest) -> list[FieldViolation]:
    """Validate a WatchEvents request: a cursor as events carry them, at most
    MAX_WATCHED_JOBS well-formed job ids, known states, a chat id as Send takes it."""
    out: list[FieldViolation] = []
    if req.start_cursor and not is_cursor(req.start_cursor):
        example = "e.g. 1733000000000-0"
        out.append(_v("start_cursor", f"start_cursor must be an Event.cursor ({example})"))
    if len(req.job_ids) > MAX_WATCHED_JOBS:
        out.append(_v("job_ids", f"at most {MAX_WATCHED_JOBS} job ids, got {len(req.job_ids)}"))
    else:
        for i, job_id in enumerate(req.job_ids):
            out += validate_job_id(job_id, f"job_ids[{i}]")
    for i, state in enumerate(req.states):
        if state == pb.JOB_STATE_UNSPECIFIED or state not in pb.JobState.values():
            out.append(_v(f"states[{i}]", f"states[{i}] must be a job state, got {state}"))
    if req.chat_id:
        out += _validate_chat_id(req.chat_id, "")
    return out


def validate_list(req: pb.ListJobsRequest) -> list[FieldViolation]:
    """Validate a ListJobs request: known state, page_size 0..1000, a token we issued.

    A token names the state the listing continues in: the requested state, or any concrete
    state when every state is listed (JOB_STATE_UNSPECIFIED).
    """
    out: list[FieldViolation] = []
    if req.state not in pb.JobState.values():
        out.append(_v("state", f"unknown state {req.state}"))
    if not 0 <= req.page_size <= MAX_PAGE_SIZE:
        out.append(_v("page_size", f"page_size must be 0..{MAX_PAGE_SIZE} (0 = 100)"))
    if req.page_token:
        decoded = decode_page_token(req.page_token)
        if decoded is None:
            out.append(_v("page_token", "page_token is not one returned by ListJobs"))
        elif decoded.state == pb.JOB_STATE_UNSPECIFIED:
            # A token names the state the listing continues in, never "all states".
            out.append(_v("page_token", "page_token does not name a state"))
        elif req.state and decoded.state != req.state:
            # A position within one state's listing means nothing in another's. (A listing
            # of every state walks the states in turn, so its tokens may name any of them.)
            out.append(_v("page_token", "page_token was issued for a different state"))
    return out


def validate_search(req: pb.SearchJobsRequest) -> list[FieldViolation]:
    """Validate a SearchJobs request: at least one of chat_id, idempotency_key and text,
    each well formed; page_size 0..1000; a token we issued for this kind of search."""
    out: list[FieldViolation] = []
    if not (req.chat_id or req.idempotency_key or req.text):
        out.append(
            _v("chat_id", "set at least one of chat_id, idempotency_key and text to search by")
        )
    if req.chat_id:
        out.extend(_validate_chat_id(req.chat_id, ""))
    if len(req.idempotency_key) > MAX_IDEMPOTENCY_KEY_CHARS:
        out.append(
            _v(
                "idempotency_key",
                f"idempotency_key must be at most {MAX_IDEMPOTENCY_KEY_CHARS} characters",
            )
        )
    if len(req.text) > MAX_TEXT_CHARS:
        out.append(_v("text", f"text must be at most {MAX_TEXT_CHARS} characters"))
    if not 0 <= req.page_size <= MAX_PAGE_SIZE:
        out.append(_v("page_size", f"page_size must be 0..{MAX_PAGE_SIZE} (0 = 100)"))
    if req.page_token:
        decoded = decode_search_token(req.page_token)
        if decoded is None:
            out.append(_v("page_token", "page_token is not one returned by SearchJobs"))
        elif not req.idempotency_key and (decoded.walk is Walk.CHAT) != bool(req.chat_id):
            # A chat's index and the state indexes are different walks.
            out.append(_v("page_token", "page_token was issued for a search by other fields"))
    return out


def validate_list_job_events(req: pb.ListJobEventsRequest) -> list[FieldViolation]:
    """Validate a ListJobEvents request: a job id, page_size 0..1000, an event cursor."""
    out = validate_job_id(req.job_id)
    if not 0 <= req.page_size <= MAX_PAGE_SIZE:
        out.append(_v("page_size", f"page_size must be 0..{MAX_PAGE_SIZE} (0 = 100)"))
    if req.page_token and not is_cursor(req.page_token):
        out.append(_v("page_token", "page_token is not one returned by ListJobEvents"))
    return out


def validate_list_suppressed(req: pb.ListSuppressedChatsRequest) -> list[FieldViolation]:
    """Validate a ListSuppressedChats request: page_size 0..1000, a token we issued."""
    out: list[FieldViolation] = []
    if not 0 <= req.page_size <= MAX_PAGE_SIZE:
        out.append(_v("page_size", f"page_size must be 0..{MAX_PAGE_SIZE} (0 = 100)"))
    if req.page_token and decode_suppression_token(req.page_token) is None:
        out.append(_v("page_token", "page_token is not one returned by ListSuppressedChats"))
    return out


def validate_unsuppress(req: pb.UnsuppressChatRequest) -> list[FieldViolation]:
    """Validate an UnsuppressChat request: a chat id as Send takes it."""
    return _validate_chat_id(req.chat_id, "")

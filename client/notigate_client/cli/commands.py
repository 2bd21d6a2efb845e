"""The client subcommands of ``notigate``: send, send-file, edit, delete, stats, job, jobs,
events, retry, cancel, suppressed, health.

They use the blocking Python client (:mod:`notigate_client`), so they work against any
gateway, local or remote, from an install of the client package alone. Output is for people
(tables) unless ``--json`` is given.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from notigate_client import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotificationClient,
    NotigateError,
    WatchedEvent,
    health,
    media_group,
    pb,
    state_name,
)
from notigate_client._common import PARSE_MODES, bot_of_job
from notigate_client.cli.batchfile import parse_duration_s, parse_time
from notigate_client.cli.mediasource import Uploads, parse_album_entry, resolve
from notigate_client.cli.registry import Handler, Subparsers
from notigate_client.cli.sendfile import POLL_INTERVAL_S, send_file
from notigate_client.media import MEDIA_KINDS

DEFAULT_TARGET = "127.0.0.1:50051"
CHUNK = 500
_STATE_NAMES = sorted(state_name(v) for v in pb.JobState.values() if v)

# A command's work, given a connected client; _with_client makes it a registry Handler.
ClientHandler = Callable[[argparse.Namespace, NotificationClient], int]


# -- connection ------------------------------------------------------------------


def _connection_flags(env: Mapping[str, str]) -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    g = flags.add_argument_group("connection")
    g.add_argument(
        "--target",
        default=env.get("NOTIGATE_TARGET") or DEFAULT_TARGET,
        help="gateway host:port (NOTIGATE_TARGET, default %(default)s)",
    )
    g.add_argument(
        "--token",
        # The gateway reads a comma-separated list from the same variable (rotation): the
        # first is the one to use.
        default=env.get("NOTIGATE_API_TOKEN", "").split(",")[0].strip() or None,
        help="bearer token (NOTIGATE_API_TOKEN; its first entry when it lists several)",
    )
    g.add_argument("--tls", action="store_true", help="use TLS with the system's roots")
    g.add_argument(
        "--ca",
        type=Path,
        default=Path(env["NOTIGATE_CA"]) if env.get("NOTIGATE_CA") else None,
        help="PEM file of the CA to trust (implies --tls; NOTIGATE_CA)",
    )
    g.add_argument("--timeout", type=float, default=10.0, help="seconds per call")
    return flags


def _bot_flag(env: Mapping[str, str]) -> argparse.ArgumentParser:
    """--bot, for the commands that pick a bot (those about one job go by its id)."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument(
        "--bot",
        default=env.get("NOTIGATE_BOT", ""),
        metavar="NAME",
        help="the bot to use, a name from the gateway's bots file (NOTIGATE_BOT; default: "
        "the bot named default, or the only bot)",
    )
    return flags


def _client(args: argparse.Namespace) -> NotificationClient:
    roots = args.ca.read_bytes() if args.ca else None
    return NotificationClient(
        args.target,
        token=args.token,
        tls=bool(args.tls),
        root_certificates=roots,
        timeout_s=args.timeout,
        bot=getattr(args, "bot", ""),
    )


# -- formatting ------------------------------------------------------------------


def _time(ts: Timestamp) -> str:
    if not ts.seconds and not ts.nanos:
        return "-"
    return ts.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _state(value: int) -> str:
    if value not in pb.JobState.values():  # a state added by a newer gateway
        return f"state {value}"
    return state_name(value)  # type: ignore[arg-type]


def _json(message: Message) -> str:
    # Zero counts are answers too: a script reading "failed" must not find it missing.
    return json_format.MessageToJson(
        message,
        indent=None,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _short(text: str, width: int = 48) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _duration_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:.0f}{unit}"
    return f"{seconds:g}s"


def format_stats(s: pb.GetStatsResponse) -> str:
    """GetStats as a two-part table: what the queue holds now beside lifetime totals.

    Finished jobs on the left are the ones still kept (retention); a note says how many the
    gateway keeps when it reports its retention.
    """
    age = f"{s.oldest_waiting_age.ToMilliseconds() / 1000:.1f}s"
    keep = s.retention

    def kept(count: int, limit: int) -> str:
        return f"{count} (newest {limit} kept)" if limit else str(count)

    left = [
        ("waiting", str(s.waiting)),
        ("delayed", str(s.delayed)),
        ("active", str(s.active)),
        ("completed", kept(s.completed, keep.keep_completed)),
        ("failed", kept(s.failed, keep.keep_failed)),
        ("cancelled", kept(s.cancelled, keep.keep_completed)),
    ]
    right = [
        ("enqueued", s.total_enqueued),
        ("sent", s.total_sent),
        ("failed", s.total_failed),
        ("retried", s.total_retried),
        ("rate limited", s.total_rate_limited),
        ("stalled", s.total_stalled),
        ("cancelled", s.total_cancelled),
        ("duplicates", s.total_duplicates),
    ]
    rows = [["QUEUE", "", "TOTALS (lifetime)", ""]]
    for i in range(max(len(left), len(right))):
        lk, lv = left[i] if i < len(left) else ("", "")
        rk, rv = right[i] if i < len(right) else ("", "")
        rows.append([lk, lv, rk, str(rv)])
    lines = [_table(rows), ""]
    if keep.HasField("keep_age") and keep.keep_age.ToSeconds() > 0:
        lines.append(f"finished jobs are kept at most {_duration_text(keep.keep_age.ToSeconds())}")
    lines.append(
        f"rate limit {s.global_rate} msg/s   oldest waiting {age}   dispatchers {s.dispatchers}"
    )
    if s.HasField("limiter"):
        lines.append(_limiter_text(s.limiter))
    if s.HasField("paused_until"):
        lines.append(f"bot paused until {_time(s.paused_until)} UTC (429s from Telegram)")
    lines += [f"alert: bot {a.bot}: {a.message}" for a in s.alerts]
    lines += [f"warning: {w}" for w in s.warnings]
    return "\n".join(lines)


def _limiter_text(limiter: pb.LimiterState) -> str:
    """The bot-wide limiter in one line."""
    text = (
        f"limiter: {limiter.sent_last_second} of {limiter.rate} sends in the last second, "
        f"{_plural(limiter.held_chats, 'chat')} held"
    )
    if limiter.chat_pauses:
        first = limiter.chat_pauses[0]
        text += f" (the last reopens {_time(first.until)} UTC: chat {first.chat_id})"
    if limiter.pause_reason:
        text += f"; paused: {limiter.pause_reason}"
    return text


def format_bots(s: pb.GetStatsResponse) -> str:
    """Each bot's share of a GetStats sum, one row per bot with its token's state; "" when
    the gateway serves one bot (the sum is that bot's)."""
    if len(s.bots) < 2:
        return ""
    rows = [["BOT", "WAITING", "DELAYED", "ACTIVE", "FAILED", "SENT", "TOKEN"]]
    for b in s.bots:
        t = b.stats
        token = "ok" if b.token_ok else "rejected by Telegram (its jobs wait)"
        if b.token_ok and t.HasField("paused_until"):
            token = f"ok, paused until {_time(t.paused_until)} UTC"
        counts = [t.waiting, t.delayed, t.active, t.failed, t.total_sent]
        rows.append([b.bot, *map(str, counts), token])
    return _table(rows)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _attempts(job: pb.Job) -> str:
    """What the attempts say about the job; ``attempts`` counts failed attempts only."""
    failed = _plural(job.attempts, "failed attempt")
    if job.state == pb.JOB_STATE_COMPLETED:
        return f"{failed} before delivery" if job.attempts else "delivered on the first attempt"
    if job.state == pb.JOB_STATE_FAILED:
        return f"{failed} (of {job.max_attempts} allowed)"
    if not job.attempts:
        return f"none failed yet (up to {job.max_attempts})"
    return f"{failed} so far (up to {job.max_attempts})"


def _error_label(job: pb.Job) -> str:
    if job.state == pb.JOB_STATE_FAILED:
        return "error"
    if job.state == pb.JOB_STATE_COMPLETED:
        return "earlier error"  # an attempt before the one that delivered it
    return "last error"


def _kind(value: int) -> str:
    if value not in pb.JobKind.values():
        return f"kind {value}"
    return pb.JobKind.Name(value).removeprefix("JOB_KIND_").lower()  # type: ignore[arg-type]


def _media_name(value: int) -> str:
    if value not in pb.MediaKind.values():
        return f"media {value}"
    return pb.MediaKind.Name(value).removeprefix("MEDIA_KIND_").lower()  # type: ignore[arg-type]


def describe_media(m: pb.Media) -> str:
    """``photo https://…``, ``document upload 3f…``: a file's kind and source."""
    source = m.WhichOneof("source")
    value = getattr(m, source) if source else ""
    where = {"url": value, "file_id": f"file_id {value}", "upload_id": f"upload {value}"}
    return f"{_media_name(m.kind)} {where.get(source or '', '(no source)')}"


def _content(request: pb.SendRequest) -> str:
    """What a message shows in one line: its text, or its media and caption."""
    if request.HasField("media_group"):
        items = request.media_group.items
        kinds = sorted({_media_name(i.media.kind) for i in items})
        caption = next((i.caption for i in items if i.caption), "")
        return f"[album of {len(items)} {'/'.join(kinds)}] {caption}".rstrip()
    if request.HasField("media"):
        return f"[{_media_name(request.media.kind)}] {request.text}".rstrip()
    return request.text


def format_job(job: pb.Job) -> str:
    """One job as ``key: value`` lines."""
    rows = [["job", job.job_id]]
    if job.kind not in (pb.JOB_KIND_UNSPECIFIED, pb.JOB_KIND_SEND):
        rows += [["kind", _kind(job.kind)], ["target job", job.target_job_id or "-"]]
    rows += [
        ["state", _state(job.state)],
        ["chat", job.chat_id or job.request.chat_id],
        ["attempts", _attempts(job)],
        ["created", _time(job.create_time)],
        ["updated", _time(job.update_time)],
        ["delivered", _time(job.deliver_time)],
        ["scheduled", _time(job.scheduled_time)],
        ["priority", str(job.request.priority)],
        ["telegram id", str(job.telegram_message_id or "-")],
    ]
    if len(job.telegram_message_ids) > 1:
        rows.append(["telegram ids", ", ".join(str(i) for i in job.telegram_message_ids)])
    if job.last_error:
        rows.append([_error_label(job), job.last_error])
    request = job.request
    if request.HasField("media"):
        rows.append(["media", describe_media(request.media)])
    for number, entry in enumerate(request.media_group.items, start=1):
        caption = f" ({_short(entry.caption, 60)})" if entry.caption else ""
        rows.append([f"album {number}", describe_media(entry.media) + caption])
    if job.kind != pb.JOB_KIND_DELETE:
        label = "caption" if request.HasField("media") else "text"
        if request.text or not (request.HasField("media") or request.HasField("media_group")):
            rows.append([label, _short(request.text, 200)])
    return _table([[f"{k}:", v] for k, v in rows])


def job_row(j: pb.Job) -> list[str]:
    """One row of the `jobs` table."""
    done = j.state == pb.JOB_STATE_COMPLETED
    fails = "-" if not j.attempts else str(j.attempts) if done else f"{j.attempts}/{j.max_attempts}"
    # A delivered job's error is history: the row shows what was delivered instead.
    content = _content(j.request)
    if j.kind == pb.JOB_KIND_DELETE:
        content = f"[delete of {j.target_job_id}]"
    elif j.kind == pb.JOB_KIND_EDIT:
        content = f"[edit of {j.target_job_id}] {content}".rstrip()
    detail = content if done else (j.last_error or content)
    return [
        j.job_id,
        _state(j.state),
        j.chat_id or j.request.chat_id,
        fails,
        _time(j.update_time),
        _short(detail),
    ]


# -- commands --------------------------------------------------------------------


def _usage(message: str) -> int:
    print(f"notigate: {message}", file=sys.stderr)
    return 2


def _media_values(args: argparse.Namespace) -> list[tuple[str, str]]:
    """Every ``--photo``/``--document``… value as (kind, value), in kind order."""
    found: list[tuple[str, str]] = []
    for kind in MEDIA_KINDS:
        given: str | list[str] | None = getattr(args, kind)
        found += [(kind, v) for v in ([given] if isinstance(given, str) else given or [])]
    return found


def _resolve(kind: str, value: str, uploads: Uploads, args: argparse.Namespace) -> pb.Media:
    return resolve(
        kind,
        value,
        uploads,
        has_spoiler=args.spoiler,
        show_caption_above_media=args.caption_above,
    )


def _send_media(
    args: argparse.Namespace, client: NotificationClient
) -> tuple[pb.Media | None, pb.MediaGroup | None]:
    """The file or album the flags name (local files uploaded first), or neither.

    Raises:
        ValueError: a value names no file, URL or file_id; or too few album items.
    """
    entries = _media_values(args)
    if args.album:
        entries += [(e.kind, e.source) for e in map(parse_album_entry, args.album)]
    uploads = Uploads(client)
    files = [_resolve(kind, value, uploads, args) for kind, value in entries]
    if not files:
        return None, None
    if len(files) == 1 and not args.album:
        return files[0], None
    album = media_group(files)
    # Telegram shows an album's caption from its first item: --text goes there.
    album.items[0].caption = args.text or ""
    return None, album


def _send(args: argparse.Namespace, client: NotificationClient) -> int:
    try:
        file, album = _send_media(args, client)
    except (ValueError, OSError) as exc:
        return _usage(str(exc))
    if file is None and album is None and args.text is None:
        return _usage("send needs --text, or a file (--photo, --document…) and a caption")
    reply = client.send(
        args.chat,
        "" if album is not None else args.text or "",
        media=file,
        media_group=album,
        parse_mode=args.parse_mode,
        priority=args.priority,
        delay=args.delay,
        send_at=args.at,
        idempotency_key=args.idempotency_key,
        max_attempts=args.max_attempts,
        disable_notification=args.silent,
    )
    print(reply.job_id, flush=True)
    if reply.duplicate:
        print("(duplicate: an earlier send with this idempotency key)", file=sys.stderr)
    if not args.wait:
        return 0
    job = client.wait_job(reply.job_id)
    print(format_job(job))
    return 0 if job.state == pb.JOB_STATE_COMPLETED else 1


def _change_line(job: pb.Job, requested: str, done: str) -> str:
    """What an edit or delete did, as one line: the change job queued, or the queued
    original changed in place."""
    if job.job_id != requested:
        return f"{_kind(job.kind)} job {job.job_id} for job {requested}: {_state(job.state)}"
    return f"job {job.job_id}: {_state(job.state)} ({done})"


def _edit(args: argparse.Namespace, client: NotificationClient) -> int:
    values = _media_values(args)  # at most one: the flags exclude each other
    try:
        # The file must be the bot's that sends the message: the one the job id names.
        uploads = Uploads(client, bot=bot_of_job(args.job_id))
        file = _resolve(*values[0], uploads, args) if values else None
        job = client.edit(
            args.job_id,
            text=args.text,
            parse_mode=args.parse_mode,
            media=file,
            link_preview=pb.LinkPreviewOptions(is_disabled=True) if args.no_preview else None,
            remove_keyboard=args.remove_keyboard,
            validate_only=args.dry_run,
        )
    except (ValueError, OSError) as exc:
        return _usage(str(exc))
    if args.json:
        print(_json(job))
    elif args.dry_run:
        print(f"job {args.job_id}: the edit is valid; nothing was changed (--dry-run)")
    else:
        print(_change_line(job, args.job_id, "rewritten before delivery"))
    return 0


def _delete(args: argparse.Namespace, client: NotificationClient) -> int:
    job = client.delete(args.job_id, validate_only=args.dry_run)
    if args.json:
        print(_json(job))
    elif args.dry_run:
        print(f"job {args.job_id}: the delete is valid; nothing was changed (--dry-run)")
    else:
        print(_change_line(job, args.job_id, "never sent"))
    return 0


def _stats(args: argparse.Namespace, client: NotificationClient) -> int:
    shown = 0
    while True:
        reply = client.stats()
        if args.json:
            print(_json(reply))
        else:
            if args.watch and sys.stdout.isatty():
                print("\x1b[H\x1b[2J", end="")  # clear the screen between refreshes
            if args.watch:
                print(time.strftime("%H:%M:%S"), client.target)
            print(format_stats(reply))
            if breakdown := format_bots(reply):
                print(f"\n{breakdown}")
        sys.stdout.flush()
        shown += 1
        if not args.watch or (args.count and shown >= args.count):
            return 0
        time.sleep(args.watch)


def _job(args: argparse.Namespace, client: NotificationClient) -> int:
    job = client.get_job(args.job_id)
    print(_json(job) if args.json else format_job(job))
    return 0


def _jobs(args: argparse.Namespace, client: NotificationClient) -> int:
    # One more than asked for tells whether the listing was cut short.
    page = min(args.limit + 1, 1000)
    return _print_jobs(args, client.list_jobs(args.state, page_size=page))


def _search(args: argparse.Namespace, client: NotificationClient) -> int:
    if not (args.chat or args.key or args.text):
        return _usage("search: say what to look for: --chat, --key and/or --text")
    found = client.search_jobs(
        chat_id=args.chat or "",
        idempotency_key=args.key or "",
        text=args.text or "",
        page_size=min(args.limit + 1, 1000),
    )
    return _print_jobs(args, found)


def _print_jobs(args: argparse.Namespace, found: Iterator[pb.Job]) -> int:
    """At most ``--limit`` jobs as a table (or JSON lines), and a note when more exist."""
    jobs = list(islice(found, args.limit + 1))
    more = len(jobs) > args.limit
    del jobs[args.limit :]
    if args.json:
        for job in jobs:
            print(_json(job))
    else:
        rows = [["ID", "STATE", "CHAT", "FAILED", "UPDATED", "ERROR / TEXT"]]
        print(_table(rows + [job_row(j) for j in jobs]))
    if more:
        sys.stdout.flush()
        print(f"{len(jobs)} shown; more exist: --limit {args.limit * 5}", file=sys.stderr)
    return 0


def event_line(watched: WatchedEvent) -> str:
    """One event as a line: time, cursor, job, state, and what the state says."""
    e = watched.event
    ms = e.time.ToMilliseconds()
    when = datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    parts = [when, e.cursor, f"job {e.job_id}", _state(e.state), f"chat {e.chat_id}"]
    if e.kind not in (pb.JOB_KIND_UNSPECIFIED, pb.JOB_KIND_SEND):
        parts.append(_kind(e.kind))
    if len(e.telegram_message_ids) > 1:
        parts.append("telegram ids " + ",".join(str(i) for i in e.telegram_message_ids))
    elif e.telegram_message_id:
        parts.append(f"telegram id {e.telegram_message_id}")
    if e.attempts:
        parts.append(_plural(e.attempts, "failed attempt"))
    if e.error:
        parts.append(f"error: {_short(e.error, 120)}")
    return "  ".join(parts)


def gap_line(watched: WatchedEvent) -> str:
    return (
        f"gap: events before {watched.cursor} were trimmed from the stream before they "
        "could be read (see `notigate jobs` for the states now)"
    )


def _events(args: argparse.Namespace, client: NotificationClient) -> int:
    shown = 0
    with client.watch_events(
        start_cursor=args.start, job_ids=args.job, states=args.state, chat_id=args.chat
    ) as events:
        start = events.connect()
        if not args.json:
            print(f"watching events after {start}", file=sys.stderr, flush=True)
        for watched in events:
            if args.json:
                print(_json(pb.WatchEventsResponse(event=watched.event, gap=watched.gap)))
            else:
                if watched.gap:
                    print(gap_line(watched))
                print(event_line(watched))
            sys.stdout.flush()
            shown += 1
            if args.count and shown >= args.count:
                break
    return 0


def _retry(args: argparse.Namespace, client: NotificationClient) -> int:
    if args.all_failed:
        return _bulk(args, client, "retry", "failed")
    if args.chat:
        print("notigate: --chat selects jobs for --all-failed", file=sys.stderr)
        return 2
    job = client.retry_job(args.job_id)
    print(f"job {job.job_id}: {_state(job.state)}")
    return 0


def _cancel(args: argparse.Namespace, client: NotificationClient) -> int:
    if args.all:
        return _bulk(args, client, "cancel", args.state or "waiting and delayed")
    if args.chat or args.state:
        print("notigate: --chat and --state select jobs for --all", file=sys.stderr)
        return 2
    job = client.cancel_job(args.job_id)
    print(f"job {job.job_id}: {_state(job.state)}")
    return 0


def suppressed_row(chat: pb.SuppressedChat) -> list[str]:
    """One row of the `suppressed list` table."""
    return [chat.chat_id, _time(chat.suppress_time), chat.job_id or "-", _short(chat.reason, 60)]


def _suppressed_list(args: argparse.Namespace, client: NotificationClient) -> int:
    chats: list[pb.SuppressedChat] = []
    token = ""
    # One more than asked for tells whether the listing was cut short.
    while len(chats) <= args.limit:
        page = client.list_suppressed_chats(min(args.limit + 1 - len(chats), 1000), token)
        chats += page.chats
        token = page.next_page_token
        if not token:
            break
    more = len(chats) > args.limit
    del chats[args.limit :]
    if args.json:
        for chat in chats:
            print(_json(chat))
    elif not chats:
        print("no suppressed chats")
    else:
        rows = [["CHAT", "SINCE", "JOB", "REASON"]]
        print(_table(rows + [suppressed_row(c) for c in chats]))
    if more:
        sys.stdout.flush()
        print(f"{len(chats)} shown; more exist: --limit {args.limit * 5}", file=sys.stderr)
    return 0


def _suppressed_remove(args: argparse.Namespace, client: NotificationClient) -> int:
    chat = client.unsuppress_chat(args.chat, validate_only=args.dry_run)
    if args.json:
        print(_json(chat))
    elif args.dry_run:
        print(f"chat {chat.chat_id} is suppressed ({chat.reason}); nothing changed (--dry-run)")
    else:
        print(f"chat {chat.chat_id}: no longer suppressed (was: {chat.reason})")
    return 0


# One RetryJobs/CancelJobs call acts on at most this many jobs (the server's bound).
_BULK_MAX = 10_000


def _bulk(args: argparse.Namespace, client: NotificationClient, verb: str, what: str) -> int:
    """Retry or cancel every job of a filter: count first, confirm, then act."""
    state = None if verb == "retry" else args.state
    call = client.retry_jobs if verb == "retry" else client.cancel_jobs
    counted = call(state, args.chat, validate_only=True)
    scope = f"{what} jobs" + (f" of chat {args.chat}" if args.chat else "")
    if args.bot:
        scope += f" of bot {args.bot}"
    if counted.count == 0:
        print(f"no {scope}: nothing to {verb}")
        return 0
    sample = ", ".join(counted.sample_job_ids)
    more = ", …" if counted.count > len(counted.sample_job_ids) else ""
    print(f"{counted.count:,} {scope} (jobs {sample}{more})")
    if not args.yes:
        if not sys.stdin.isatty():
            print(f"notigate: not confirmed; add --yes to {verb} them", file=sys.stderr)
            return 1
        answer = input(f"{verb} all {counted.count:,}? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("nothing changed")
            return 1
    done = 0
    # Bounded by the count confirmed: jobs that fail again at once are not retried twice.
    while done < counted.count:
        reply = call(state, args.chat)
        done += reply.count
        if reply.count < _BULK_MAX:
            break
    print(f"{'retried' if verb == 'retry' else 'cancelled'} {done:,} jobs")
    return 0


def _health(args: argparse.Namespace) -> int:
    """Exit 0 only when the server reports SERVING (Docker HEALTHCHECK, scripts)."""
    target = args.target
    if args.ca or args.tls:
        roots = args.ca.read_bytes() if args.ca else None
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(roots))
    else:
        channel = grpc.insecure_channel(target)
    metadata = (("authorization", f"Bearer {args.token}"),) if args.token else ()
    with channel:
        try:
            status = health.check(channel, args.service, timeout=args.timeout, metadata=metadata)
        except grpc.RpcError as exc:
            # Unreachable, or refused (auth): either way not healthy.
            print(f"{target}: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    print(f"{target}: {status.name}")
    return 0 if status is health.ServingStatus.SERVING else 1


def _print_error(err: NotigateError) -> None:
    """The error once: a status message that restates the first violation is not repeated."""
    name = err.code.name if err.code is not None else "ERROR"
    lines: list[str]
    if isinstance(err, InvalidArgumentError) and err.violations:
        found = [f"{field}: {description}" for field, description in err.violations]
        total = int(err.metadata.get("violations", len(found)))
        if len(found) == 1 and total == 1:
            lines = [f"{name}: {found[0]}"]
        else:
            lines = [f"{name}: {_plural(total, 'invalid field')}:"] + [f"  {v}" for v in found]
            if total > len(found):
                lines.append(f"  ... and {total - len(found)} more")
    elif isinstance(err, FailedPreconditionError) and len(err.violations) > 1:
        lines = [str(err)] + [f"  {subject}: {d}" for _type, subject, d in err.violations]
    else:
        lines = [str(err)]
    lines += getattr(err, "__notes__", [])
    print(f"notigate: {lines[0]}", file=sys.stderr)
    for line in lines[1:]:
        print(line, file=sys.stderr)


def _with_client(handler: ClientHandler) -> Handler:
    """Run ``handler`` with a client for the command's connection flags; map errors to exits."""

    def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
        try:
            client = _client(args)
        except OSError as exc:
            print(f"notigate: {exc}", file=sys.stderr)
            return 2
        with client:
            try:
                return handler(args, client)
            except NotigateError as err:
                _print_error(err)
                return 1
            except KeyboardInterrupt:
                return 130

    return run


# -- parser ----------------------------------------------------------------------


def _duration(text: str) -> float:
    try:
        return parse_duration_s(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _when(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _chunk(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError("a SendBatch carries 1..1000 messages")
    return value


def _media_flags(p: argparse.ArgumentParser, *, repeat: bool) -> None:
    """--photo, --document, --video, --animation, --audio, --voice, and how they show."""
    g = p.add_argument_group(
        "files",
        "a local file is uploaded first, an http(s) URL is fetched by Telegram, anything "
        "else is a Telegram file_id"
        + ("; two or more make an album" if repeat else "; one of them"),
    )
    target = g if repeat else g.add_mutually_exclusive_group()
    for kind in MEDIA_KINDS:
        target.add_argument(
            f"--{kind}",
            action="append" if repeat else "store",
            metavar="FILE",
            help=f"send a{'n' if kind[0] in 'aeiou' else ''} {kind}: a path, URL or file_id",
        )
    g.add_argument("--spoiler", action="store_true", help="photos, videos: hide until tapped")
    g.add_argument(
        "--caption-above", action="store_true", help="photos, videos: the caption above the file"
    )


def add_commands(sub: Subparsers, env: Mapping[str, str]) -> None:
    """Add the client subcommands to ``sub``; flag defaults come from ``env``."""
    conn = _connection_flags(env)
    bot = _bot_flag(env)

    def add(
        name: str, help_: str, handler: ClientHandler | None = None, *, bots: bool = False
    ) -> argparse.ArgumentParser:
        parents = [conn, bot] if bots else [conn]
        p = sub.add_parser(name, help=help_, description=help_, parents=parents)
        if handler is not None:
            p.set_defaults(handler=_with_client(handler))
        return p

    p = add("send", "enqueue one message; prints its job id", _send, bots=True)
    p.add_argument("--chat", required=True, help="chat id or @channel")
    p.add_argument("--text", help="the message, or the caption of a file (of an album's first)")
    _media_flags(p, repeat=True)
    p.add_argument(
        "--album",
        nargs="+",
        metavar="[KIND:]FILE",
        help="an album of 2..10 files, each a path, URL or file_id; the kind is guessed from "
        "the name (photo, video, audio, else document) unless given, e.g. video:clip.mp4",
    )
    p.add_argument("--priority", type=int, default=0, help="0..10, higher first")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--delay", type=_duration, help="deliver no earlier than, e.g. 10s, 2m")
    when.add_argument(
        "--at",
        type=_when,
        metavar="TIME",
        help="deliver no earlier than this ISO 8601 time with offset, e.g. 2026-12-01T18:00Z",
    )
    p.add_argument("--parse-mode", choices=list(PARSE_MODES))
    p.add_argument("--idempotency-key", help="a repeat within 24 h returns the first job")
    p.add_argument("--max-attempts", type=int, default=0)
    p.add_argument("--silent", action="store_true", help="disable_notification")
    p.add_argument(
        "--wait",
        action="store_true",
        help="then wait until the message is delivered, failed or cancelled and show the job "
        "(exit 1 unless delivered)",
    )

    p = add(
        "send-file",
        "check, then enqueue every message of a CSV or JSONL file (rows without a bot "
        "column go to --bot)",
        send_file,
        bots=True,
    )
    p.add_argument(
        "file", type=Path, help="*.csv with a header, or *.jsonl/*.ndjson; fields of SendRequest"
    )
    p.add_argument(
        "--chunk", type=_chunk, default=CHUNK, help="messages per SendBatch (%(default)s)"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="check every row with the gateway, send nothing"
    )
    p.add_argument(
        "--wait",
        action="store_true",
        help="after enqueueing, follow delivery to the end (exit 1 when a message failed)",
    )
    p.add_argument("--poll-interval", type=float, default=POLL_INTERVAL_S, help=argparse.SUPPRESS)
    p.add_argument(
        "--fresh-keys",
        action="store_true",
        help="random idempotency keys (default: keys from each row's content, so a rerun "
        "sends only the rows not accepted yet)",
    )

    p = add(
        "edit",
        "change a message's text, caption, file or keyboard: rewritten in place while queued, "
        "by an edit job once sent",
        _edit,
    )
    p.add_argument("job_id", help="the send job whose message to change")
    p.add_argument("--text", help="the new text, or caption ('' removes a caption)")
    p.add_argument("--parse-mode", choices=list(PARSE_MODES))
    _media_flags(p, repeat=False)
    p.add_argument("--remove-keyboard", action="store_true", help="drop the inline keyboard")
    p.add_argument("--no-preview", action="store_true", help="disable the link preview")
    p.add_argument("--dry-run", action="store_true", help="check the edit, change nothing")
    p.add_argument("--json", action="store_true", help="the job that carries the edit, as JSON")

    p = add(
        "delete",
        "delete a message: cancelled while queued, removed by a delete job once sent (48 h)",
        _delete,
    )
    p.add_argument("job_id", help="the send job whose message (or album) to delete")
    p.add_argument("--dry-run", action="store_true", help="check the delete, change nothing")
    p.add_argument("--json", action="store_true", help="the job that carries the delete, as JSON")

    p = add(
        "stats",
        "queue depths and lifetime totals (without --bot: the sum over the bots, then each bot)",
        _stats,
        bots=True,
    )
    p.add_argument("--watch", type=float, metavar="N", help="refresh every N seconds")
    p.add_argument("--count", type=int, help="with --watch: stop after this many refreshes")
    p.add_argument("--json", action="store_true")

    p = add("job", "show one job", _job)
    p.add_argument("job_id")
    p.add_argument("--json", action="store_true")

    p = add("jobs", "list jobs (every state, or one with --state)", _jobs, bots=True)
    p.add_argument("--state", choices=_STATE_NAMES)
    p.add_argument("--limit", type=_positive, default=20, help="jobs to show (%(default)s)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")

    p = add(
        "search",
        "find retained jobs by chat, idempotency key or text (newest first; every "
        "criterion given must match)",
        _search,
        bots=True,
    )
    p.add_argument("--chat", help="jobs for this chat id (from an index)")
    p.add_argument("--key", help="the job sent with this idempotency key")
    p.add_argument("--text", help="text or caption containing this, ignoring case")
    p.add_argument("--limit", type=_positive, default=20, help="jobs to show (%(default)s)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")

    p = add(
        "events",
        "follow job state changes as they happen, one line each (reconnects by itself and "
        "resumes where it was); --job ids name their bot, else --bot picks its stream",
        _events,
        bots=True,
    )
    p.add_argument(
        "--from",
        dest="start",
        default="",
        metavar="CURSOR",
        help="every event after this one's cursor (default: only new events)",
    )
    p.add_argument(
        "--job", action="extend", nargs="+", default=[], metavar="ID", help="only these jobs'"
    )
    p.add_argument(
        "--state",
        action="extend",
        nargs="+",
        default=[],
        choices=_STATE_NAMES,
        help="only events entering these states",
    )
    p.add_argument("--chat", help="only this chat's")
    p.add_argument("--count", type=_positive, help="stop after this many events")
    p.add_argument("--json", action="store_true", help="one WatchEventsResponse per line")

    p = add(
        "retry",
        "queue a failed job again, or every failed job of a bot (--all-failed)",
        _retry,
        bots=True,
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("job_id", nargs="?")
    which.add_argument(
        "--all-failed", action="store_true", help="every failed job: counts, asks, then retries"
    )
    p.add_argument("--chat", help="with --all-failed: only this chat's jobs")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")

    p = add(
        "cancel",
        "cancel a job not yet sent, or every one of a filter (--all)",
        _cancel,
        bots=True,
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("job_id", nargs="?")
    which.add_argument(
        "--all", action="store_true", help="every waiting/delayed job: counts, asks, cancels"
    )
    p.add_argument("--state", choices=["waiting", "delayed"], help="with --all: only this state")
    p.add_argument("--chat", help="with --all: only this chat's jobs")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")

    p = sub.add_parser(
        "suppressed",
        help="chats messages are not sent to (they blocked the bot or were not found)",
        description="Chats that answered 403 or 400 chat not found: later messages to them "
        "fail without reaching Telegram (unless sent with ignore_suppression).",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = actions.add_parser(
        "list", help="the suppressed chats of a bot, newest first", parents=[conn, bot]
    )
    q.add_argument("--limit", type=_positive, default=20, help="chats to show (%(default)s)")
    q.add_argument("--json", action="store_true", help="one JSON object per line")
    q.set_defaults(handler=_with_client(_suppressed_list))
    q = actions.add_parser(
        "remove", help="let messages reach a suppressed chat again", parents=[conn, bot]
    )
    q.add_argument("chat", help="the chat id or @channel")
    q.add_argument("--dry-run", action="store_true", help="check it is suppressed, change nothing")
    q.add_argument("--json", action="store_true", help="the suppression lifted, as JSON")
    q.set_defaults(handler=_with_client(_suppressed_remove))

    p = add("health", "exit 0 only when the gateway is SERVING")
    p.add_argument("--service", default="", help="service name to check (default: the server)")
    p.set_defaults(handler=lambda args, env: _health(args))

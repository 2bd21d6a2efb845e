"""The client subcommands of ``notigate``: send, send-file, stats, job, jobs, retry, cancel, health.

They use the blocking Python client (:mod:`notigate_client`), so they work against any
gateway, local or remote, from an install of the client package alone. Output is for people
(tables) unless ``--json`` is given.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Mapping
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
    health,
    pb,
)
from notigate_client.cli.batchfile import (
    BatchFileError,
    Progress,
    parse_duration_s,
    read_batch_file,
)
from notigate_client.cli.registry import Subparsers

DEFAULT_TARGET = "127.0.0.1:50051"
CHUNK = 500
_STATES = {
    name: pb.JobState.Value(f"JOB_STATE_{name.upper()}")
    for name in ("waiting", "delayed", "active", "completed", "failed", "cancelled")
}
_BATCH_INDEX = re.compile(r"^messages\[(\d+)\]")

Handler = Callable[[argparse.Namespace, NotificationClient], int]


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
        default=env.get("NOTIGATE_API_TOKEN") or None,
        help="bearer token (NOTIGATE_API_TOKEN)",
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


def _client(args: argparse.Namespace) -> NotificationClient:
    roots = args.ca.read_bytes() if args.ca else None
    return NotificationClient(
        args.target,
        token=args.token,
        tls=bool(args.tls),
        root_certificates=roots,
        timeout_s=args.timeout,
    )


# -- formatting ------------------------------------------------------------------


def _time(ts: Timestamp) -> str:
    if not ts.seconds and not ts.nanos:
        return "-"
    return ts.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _state(value: int) -> str:
    return pb.JobState.Name(value).removeprefix("JOB_STATE_").lower()  # type: ignore[arg-type]


def _json(message: Message) -> str:
    return json_format.MessageToJson(message, indent=None, preserving_proto_field_name=True)


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _short(text: str, width: int = 48) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def format_stats(s: pb.GetStatsResponse) -> str:
    """GetStats as a two-part table: queue depths beside lifetime totals."""
    age = f"{s.oldest_waiting_age.ToMilliseconds() / 1000:.1f}s"
    # Finished jobs are trimmed to the retention limits, the totals never: say so, or a
    # steady "completed 100" looks like a stuck queue.
    kept = s.retention if s.HasField("retention") else None

    def retained(name: str, keep: int) -> str:
        return f"{name} (newest {keep:,} kept)" if kept is not None else name

    left = [
        ("waiting", s.waiting),
        ("delayed", s.delayed),
        ("active", s.active),
        (retained("completed", s.retention.keep_completed), s.completed),
        (retained("failed", s.retention.keep_failed), s.failed),
        (retained("cancelled", s.retention.keep_completed), s.cancelled),
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
    rows = [["QUEUE", "", "TOTALS", ""]]
    for i in range(max(len(left), len(right))):
        lk, lv = left[i] if i < len(left) else ("", "")
        rk, rv = right[i] if i < len(right) else ("", "")
        rows.append([lk, str(lv), rk, str(rv)])
    lines = [_table(rows), ""]
    lines.append(f"rate limit {s.global_rate} msg/s   oldest waiting {age}")
    if kept is not None:
        days, rest = divmod(kept.keep_age.seconds, 86_400)
        span = (
            f"{days} day{'s' * (days != 1)}" if days and not rest else f"{kept.keep_age.seconds} s"
        )
        lines.append(f"finished jobs kept up to {span}; totals count since the queue began")
    if s.HasField("paused_until"):
        lines.append(f"bot paused until {_time(s.paused_until)} UTC (429s from Telegram)")
    lines += [f"warning: {w}" for w in s.warnings]
    return "\n".join(lines)


def format_job(job: pb.Job) -> str:
    """One job as ``key: value`` lines."""
    rows = [
        ["job", job.job_id],
        ["state", _state(job.state)],
        ["chat", job.chat_id or job.request.chat_id],
        ["attempts", f"{job.attempts}/{job.max_attempts}"],
        ["created", _time(job.create_time)],
        ["updated", _time(job.update_time)],
        ["delivered", _time(job.deliver_time)],
        ["scheduled", _time(job.scheduled_time)],
        ["priority", str(job.request.priority)],
        ["telegram id", str(job.telegram_message_id or "-")],
        ["last error", job.last_error or "-"],
        ["text", _short(job.request.text, 200)],
    ]
    return _table([[f"{k}:", v] for k, v in rows])


# -- commands --------------------------------------------------------------------


def _send(args: argparse.Namespace, client: NotificationClient) -> int:
    reply = client.send(
        args.chat,
        args.text,
        parse_mode=args.parse_mode,
        priority=args.priority,
        delay=args.delay,
        send_at=args.at,
        idempotency_key=args.idempotency_key,
        max_attempts=args.max_attempts,
        disable_notification=args.silent,
    )
    print(reply.job_id)
    if reply.duplicate:
        print("(duplicate: an earlier send with this idempotency key)", file=sys.stderr)
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
    state = _STATES[args.state] if args.state else None
    jobs = list(islice(client.list_jobs(state, page_size=min(args.limit, 1000)), args.limit))
    if args.json:
        for job in jobs:
            print(_json(job))
        return 0
    rows = [["ID", "STATE", "CHAT", "ATTEMPTS", "UPDATED", "ERROR / TEXT"]]
    rows += [
        [
            j.job_id,
            _state(j.state),
            j.chat_id or j.request.chat_id,
            f"{j.attempts}/{j.max_attempts}",
            _time(j.update_time),
            _short(j.last_error or j.request.text),
        ]
        for j in jobs
    ]
    print(_table(rows))
    return 0


def _retry(args: argparse.Namespace, client: NotificationClient) -> int:
    job = client.retry_job(args.job_id)
    print(f"job {job.job_id}: {_state(job.state)}")
    return 0


def _cancel(args: argparse.Namespace, client: NotificationClient) -> int:
    job = client.cancel_job(args.job_id)
    print(f"job {job.job_id}: {_state(job.state)}")
    return 0


def _send_file(args: argparse.Namespace, client: NotificationClient) -> int:
    try:
        records = read_batch_file(args.file, derive_keys=not args.fresh_keys)
    except (OSError, BatchFileError) as exc:
        print(f"notigate: {args.file}: {exc}", file=sys.stderr)
        return 2
    progress = Progress(len(records))
    duplicates = sent = 0
    try:
        for start in range(0, len(records), args.chunk):
            chunk = records[start : start + args.chunk]
            try:
                results = client.send_batch([r.request for r in chunk])
            except InvalidArgumentError as err:
                progress.close()
                # Violations name messages[i] of this chunk; point at the file's lines instead.
                print(f"notigate: {err}", file=sys.stderr)
                for field, description in err.violations:
                    m = _BATCH_INDEX.match(field)
                    where = f"line {chunk[int(m[1])].line}: " if m else ""
                    print(f"  {where}{field}: {description}", file=sys.stderr)
                print(f"{sent} of {len(records)} messages were accepted before", file=sys.stderr)
                return 1
            sent += len(results)
            duplicates += sum(r.duplicate for r in results)
            progress.update(sent)
    finally:
        progress.close()
    print(f"{sent} messages accepted ({duplicates} duplicates) from {args.file}")
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
    print(f"notigate: {err}", file=sys.stderr)
    if isinstance(err, InvalidArgumentError):
        for field, description in err.violations:
            print(f"  {field}: {description}", file=sys.stderr)
    elif isinstance(err, FailedPreconditionError):
        for _type, subject, description in err.violations:
            print(f"  {subject}: {description}", file=sys.stderr)


def _with_client(handler: Handler) -> Callable[[argparse.Namespace, Mapping[str, str]], int]:
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


def _at(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    # Without an offset the time is this machine's local time, as a person typing it means.
    return when if when.tzinfo else when.astimezone()


def add_commands(sub: Subparsers, env: Mapping[str, str]) -> None:
    """Add the client subcommands to ``sub``; flag defaults come from ``env``."""
    conn = _connection_flags(env)

    def add(name: str, help_: str, handler: Handler | None = None) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_, parents=[conn])
        if handler is not None:
            p.set_defaults(handler=_with_client(handler))
        return p

    p = add("send", "enqueue one message; prints its job id", _send)
    p.add_argument("--chat", required=True, help="chat id or @channel")
    p.add_argument("--text", required=True)
    p.add_argument("--priority", type=int, default=0, help="0..10, higher first")
    p.add_argument("--delay", type=_duration, help="deliver no earlier than, e.g. 10s, 2m")
    p.add_argument("--at", type=_at, help="deliver no earlier than, e.g. 2026-12-01T09:00:00+01:00")
    p.add_argument("--parse-mode", choices=["HTML", "MarkdownV2", "Markdown"])
    p.add_argument("--idempotency-key", help="a repeat within 24 h returns the first job")
    p.add_argument("--max-attempts", type=int, default=0)
    p.add_argument("--silent", action="store_true", help="disable_notification")

    p = add("send-file", "enqueue every message of a CSV (with header) or JSONL file", _send_file)
    p.add_argument(
        "file", type=Path, help="*.csv, or *.jsonl/*.ndjson; columns are SendRequest fields"
    )
    p.add_argument("--chunk", type=int, default=CHUNK, help="messages per SendBatch (%(default)s)")
    p.add_argument(
        "--fresh-keys",
        action="store_true",
        help="random idempotency keys (default: file hash + line, so a rerun sends no duplicates)",
    )

    p = add("stats", "queue depths and lifetime totals", _stats)
    p.add_argument("--watch", type=float, metavar="N", help="refresh every N seconds")
    p.add_argument("--count", type=int, help="with --watch: stop after this many refreshes")
    p.add_argument("--json", action="store_true")

    p = add("job", "show one job", _job)
    p.add_argument("job_id")
    p.add_argument("--json", action="store_true")

    p = add("jobs", "list jobs (every state, or one with --state)", _jobs)
    p.add_argument("--state", choices=sorted(_STATES))
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true", help="one JSON object per line")

    p = add("retry", "queue a failed job again", _retry)
    p.add_argument("job_id")

    p = add("cancel", "cancel a job not yet sent", _cancel)
    p.add_argument("job_id")

    p = add("health", "exit 0 only when the gateway is SERVING")
    p.add_argument("--service", default="", help="service name to check (default: the server)")
    p.set_defaults(handler=lambda args, env: _health(args))

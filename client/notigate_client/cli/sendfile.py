"""``notigate send-file``: check a whole file, enqueue it, optionally follow its delivery.

The order is what makes a rerun safe: every row gets its idempotency key before anything is
sent (see :mod:`notigate_client.cli.batchfile`), every row is checked (locally, then by the
server with ``validate_only``) before the first one is sent, and only a file without a single
problem is enqueued. Running the same file again, fixed or extended, sends only the rows the
gateway has not accepted yet.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from notigate_client import (
    InvalidArgumentError,
    NotFoundError,
    NotificationClient,
    NotigateError,
    pb,
)
from notigate_client.cli.batchfile import (
    BatchFile,
    BatchFileError,
    Problem,
    Progress,
    Record,
    read_batch_file,
)

__all__ = ["send_file"]

_VIOLATION = re.compile(r"^messages\[(\d+)\]\.?(.*)$")
_MESSAGE_REF = re.compile(r"messages\[(\d+)\](?:\.[a-z_]+)?")
_FINISHED = frozenset({pb.JOB_STATE_COMPLETED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED})
# --wait polls GetJob once per interval for the first pending jobs in delivery order (a
# window of twice as many as were found finished last time, plus a floor, at most a cap),
# plus a few others in turn, so a job stuck at the front (delayed, retrying) hides nothing
# for long. The load follows the delivery rate, not the file's size.
POLL_MIN = 20
POLL_MAX = 200
POLL_WORKERS = 8
POLL_INTERVAL_S = 1.0
_SHOWN_REASONS = 10


def _problem(part: Sequence[Record], field: str, description: str) -> tuple[int, Problem]:
    """A server violation of ``part`` as a problem of the file's line and column, and the
    index of the message it concerns (-1 for the batch as a whole)."""
    match = _VIOLATION.match(field)
    if match is None or int(match[1]) >= len(part):
        return -1, Problem(0, field, description)
    index = int(match[1])
    record = part[index]
    top, _, rest = match[2].partition(".")
    # Other messages the description points at (duplicate keys) are lines to the reader.
    description = _MESSAGE_REF.sub(
        lambda m: f"line {part[int(m[1])].line}" if int(m[1]) < len(part) else m[0], description
    )
    if rest:
        description = f"{rest}: {description}"
    return index, Problem(record.line, record.column(top) if top else "", description)


def _server_problems(
    client: NotificationClient, records: Sequence[Record], chunk: int
) -> tuple[list[Problem], int]:
    """Every violation the server finds in ``records``, checked ``chunk`` at a time with
    validate_only; and how many messages a server that ignores validate_only stored."""
    problems: list[Problem] = []
    stored = 0
    for start in range(0, len(records), chunk):
        pending = records[start : start + chunk]
        while pending:
            try:
                results = client.send_batch([r.request for r in pending], validate_only=True)
            except InvalidArgumentError as err:
                found = [_problem(pending, f, d) for f, d in err.violations]
                problems += [p for _, p in found]
                total = int(err.metadata.get("violations", len(err.violations)))
                last = max((i for i, _ in found), default=-1)
                if len(err.violations) >= total or last < 0:
                    break
                # The server kept only the first violations that fit in its reply: check the
                # messages after the last one it reported again.
                pending = pending[last + 1 :]
                continue
            # A gateway older than validate_only enqueued the batch: say so, it is not undone.
            stored += len(results)
            break
    return problems, stored


def _report_problems(path: str, batch: BatchFile, problems: list[Problem]) -> None:
    unique = sorted(set(problems), key=lambda p: (p.line, p.column, p.message))
    # Without rows, the problems are the header's (a CSV's line 1).
    bad_rows = len({p.line for p in unique if p.line > 0})
    head = f"{batch.rows} rows checked, {bad_rows} invalid" if batch.rows else "invalid header"
    print(f"notigate: {path}: {head}; nothing was sent:", file=sys.stderr)
    for problem in unique:
        print(f"  {problem}", file=sys.stderr)


def _enqueue(
    client: NotificationClient, records: Sequence[Record], chunk: int
) -> list[pb.SendResponse]:
    progress = Progress(len(records), label="accepted")
    results: list[pb.SendResponse] = []
    try:
        for start in range(0, len(records), chunk):
            part = records[start : start + chunk]
            try:
                results += client.send_batch([r.request for r in part])
            except NotigateError as err:
                err.add_note(
                    f"{len(results)} of {len(records)} messages were accepted before this "
                    "error; the same command again sends only the rest"
                )
                raise
            progress.update(len(results))
    finally:
        progress.close()
    return results


def _fetch(client: NotificationClient, job_id: str) -> pb.Job | None:
    try:
        return client.get_job(job_id)
    except NotFoundError:
        return None  # finished and trimmed by the gateway's retention


def _wait(client: NotificationClient, jobs: Sequence[tuple[str, int]], interval_s: float) -> int:
    """Follow ``jobs`` ((job id, priority)) until each is finished; print a summary; 1 when
    any failed."""
    # The gateway delivers by priority, then in order of acceptance.
    order = sorted(range(len(jobs)), key=lambda i: (-jobs[i][1], i))
    pending = list(dict.fromkeys(jobs[i][0] for i in order))
    total = len(pending)
    finished: dict[str, pb.Job | None] = {}
    progress = Progress(total, label="finished")
    progress.update(0)
    size, turn = POLL_MIN, 0
    try:
        with ThreadPoolExecutor(POLL_WORKERS) as pool:
            while pending:
                window, rest = pending[:size], pending[size:]
                turn = turn % len(rest) if rest else 0
                others = (rest[turn:] + rest[:turn])[:POLL_MIN]
                turn += POLL_MIN
                polled = window + others
                found = 0
                for position, job in enumerate(pool.map(lambda j: _fetch(client, j), polled)):
                    if job is None or job.state in _FINISHED:
                        finished[polled[position]] = job
                        found += position < len(window)
                pending = [j for j in pending if j not in finished]
                size = min(POLL_MAX, 2 * found + POLL_MIN)
                progress.update(len(finished))
                if pending:
                    time.sleep(interval_s)
    except KeyboardInterrupt:
        progress.close()
        print(
            f"stopped waiting: {len(finished)} of {total} finished; the others stay queued",
            file=sys.stderr,
        )
        raise
    progress.close()
    return _summary(list(finished.values()))


def _summary(jobs: list[pb.Job | None]) -> int:
    states = Counter(job.state if job is not None else None for job in jobs)
    parts = [
        f"{states[pb.JOB_STATE_COMPLETED]} delivered",
        f"{states[pb.JOB_STATE_FAILED]} failed",
        f"{states[pb.JOB_STATE_CANCELLED]} cancelled",
    ]
    if states[None]:
        # Retention trimmed them before a poll saw them: finished, but how is not known.
        parts.append(f"{states[None]} finished but no longer kept by the gateway")
    print(", ".join(parts))
    reasons = Counter(
        job.last_error or "(no error recorded)"
        for job in jobs
        if job is not None and job.state == pb.JOB_STATE_FAILED
    )
    if reasons:
        print("failed:")
        for reason, count in reasons.most_common(_SHOWN_REASONS):
            print(f"  {count:>6}  {reason}")
        rest = sum(reasons.values()) - sum(c for _, c in reasons.most_common(_SHOWN_REASONS))
        if rest:
            print(f"  {rest:>6}  (other reasons)")
    return 1 if states[pb.JOB_STATE_FAILED] else 0


def send_file(args: argparse.Namespace, client: NotificationClient) -> int:
    """The send-file command: 0 all accepted (and delivered, with --wait), 1 a row invalid or
    refused (or, with --wait, a message failed), 2 the file unreadable; 130 Ctrl-C."""
    path = str(args.file)
    try:
        batch = read_batch_file(args.file, fresh_keys=args.fresh_keys)
    except (OSError, BatchFileError) as exc:
        print(f"notigate: {path}: {exc}", file=sys.stderr)
        return 2
    problems = list(batch.problems)
    if batch.records:
        # Checked even when some rows failed to parse, so one run lists every problem.
        found, stored = _server_problems(client, batch.records, args.chunk)
        problems += found
        if stored:
            print(
                f"notigate: the gateway ignores validate_only (an older version): checking "
                f"the file stored {stored} messages",
                file=sys.stderr,
            )
    if problems:
        _report_problems(path, batch, problems)
        return 1
    if args.dry_run:
        print(f"{batch.rows} rows checked, all valid; nothing was sent (--dry-run)")
        return 0
    results = _enqueue(client, batch.records, args.chunk)
    duplicates = sum(r.duplicate for r in results)
    print(
        f"{len(results)} messages accepted from {path}: {len(results) - duplicates} new, "
        f"{duplicates} already accepted (not sent again)"
    )
    if not args.wait:
        return 0
    sys.stdout.flush()
    jobs = [(r.job_id, rec.request.priority) for r, rec in zip(results, batch.records, strict=True)]
    return _wait(client, jobs, args.poll_interval)

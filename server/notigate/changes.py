"""Edits and deletes of a message a send job carries: EditMessage and DeleteMessage.

A message still queued (waiting or delayed) is changed where it lies: an edit rewrites the
job's payload, a delete cancels it; Telegram sees only the final content, or nothing.
Once the send job is leased or delivered, the change becomes a job of its own (kind edit
or delete) for the same chat, paced and retried like a send; it waits until the
original's delivery is recorded (the dispatcher postpones it meanwhile) and fails if the
original never gets delivered.

The send job's payload always holds what the chat shows (or will show): an edit job is
computed from it and writes its result back (compare-and-set, so two edits racing are
applied one after the other), so a later edit that leaves some field alone keeps the
earlier edit's value of it (Telegram drops an inline keyboard an editMessageText call
does not repeat).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from notigate.errors import ChangeRefused, JobNotFound, RequestInvalid
from notigate.media import upload_ids
from notigate.queue import JobKind, JobRecord, JobState, NewJob, Queue
from notigate.queue.scripts import RewriteCode, Status
from notigate.telegram_media import EDIT_CAPTION, EDIT_MARKUP, EDIT_MEDIA, EDIT_TEXT
from notigate.validation import FieldViolation, validate_media, validate_send
from notigate_client import pb

__all__ = [
    "DELETE_WINDOW_S",
    "EDITABLE_PATHS",
    "Change",
    "delete_message",
    "edit_message",
    "edit_paths",
]

# Telegram deletes a message only within 48 hours of sending it.
DELETE_WINDOW_S = 48 * 3600
EDITABLE_PATHS = ("text", "parse_mode", "reply_markup", "media", "link_preview")
# A job moves on while the change is computed at most this many times before it gives up.
_RACE_ATTEMPTS = 5
_QUEUED = (JobState.WAITING, JobState.DELAYED)
_IN_FLIGHT = (JobState.ACTIVE, JobState.COMPLETED)


@dataclass(frozen=True, slots=True)
class Change:
    """What an edit or delete did: the job that carries it (the original, changed in
    place, or the new edit/delete job), and whether anything was written."""

    job_id: str
    written: bool


def _v(field: str, description: str) -> FieldViolation:
    return FieldViolation(field=field, description=description)


def edit_paths(request: pb.EditMessageRequest) -> tuple[list[str], list[FieldViolation]]:
    """The fields an edit changes (its update_mask, or every field it sets) and what is
    wrong with its mask."""
    if request.HasField("update_mask") and request.update_mask.paths:
        paths = list(dict.fromkeys(request.update_mask.paths))
        bad = [p for p in paths if p not in EDITABLE_PATHS]
        violations = [
            _v("update_mask", f"unknown path {p!r}: paths are {', '.join(EDITABLE_PATHS)}")
            for p in bad
        ]
        return [p for p in paths if p not in bad], violations
    paths = []
    if request.text:
        paths.append("text")
    if request.parse_mode:
        paths.append("parse_mode")
    for name in ("reply_markup", "media", "link_preview"):
        if request.HasField(name):
            paths.append(name)
    if not paths:
        return [], [_v("update_mask", "the edit changes nothing: set a field or update_mask")]
    return paths, []


def _merged(
    original: pb.SendRequest, edit: pb.EditMessageRequest, paths: Sequence[str]
) -> pb.SendRequest:
    content = pb.SendRequest()
    content.CopyFrom(original)
    if "text" in paths:
        content.text = edit.text
    if "parse_mode" in paths:
        content.parse_mode = edit.parse_mode
    for name in ("reply_markup", "media", "link_preview"):
        if name in paths:
            content.ClearField(name)
            if edit.HasField(name):
                getattr(content, name).CopyFrom(getattr(edit, name))
    return content


def _edit_method(original: pb.SendRequest, paths: Sequence[str]) -> str:
    """The Bot API method that turns the sent ``original`` into the edited content.

    Raises:
        RequestInvalid: no method can (media added to a text message).
    """
    has_media = original.HasField("media")
    if "media" in paths:
        if not has_media:
            raise RequestInvalid(
                [_v("media", "the message is a text message: Telegram cannot add media to it")]
            )
        return EDIT_MEDIA
    if "link_preview" in paths and has_media:
        raise RequestInvalid([_v("link_preview", "link_preview applies to text messages only")])
    if {"text", "parse_mode", "link_preview"} & set(paths):
        return EDIT_CAPTION if has_media else EDIT_TEXT
    return EDIT_MARKUP


def _check_edit_content(
    content: pb.SendRequest, request: pb.EditMessageRequest, paths: Sequence[str]
) -> list[FieldViolation]:
    violations = validate_send(content)
    if "media" in paths and request.HasField("media"):
        # Named after the edit's own fields, not the merged message's.
        violations = [v for v in violations if not v.field.startswith("media")]
        violations += validate_media(request.media, "media")
        if request.media.kind == pb.MEDIA_KIND_VOICE:
            violations.append(_v("media.kind", "Telegram cannot edit a message into a voice"))
    return violations


async def _target(queue: Queue, job_id: str) -> JobRecord:
    record = await queue.get(job_id)
    if record is None:
        raise JobNotFound(job_id)
    if record.kind is not JobKind.SEND:
        raise ChangeRefused(
            job_id,
            f"job {job_id} is a{'n edit' if record.kind is JobKind.EDIT else ' delete'} "
            "job: name the send job whose message it changes",
        )
    return record


def _not_deliverable(record: JobRecord, what: str) -> ChangeRefused:
    return ChangeRefused(
        record.job_id,
        f"job {record.job_id} is {record.state}: its message was never sent, "
        f"there is nothing to {what}",
    )


async def edit_message(
    queue: Queue, request: pb.EditMessageRequest, *, validate_only: bool = False
) -> Change:
    """Apply EditMessage (see the module's docstring); raises JobNotFound, ChangeRefused
    or RequestInvalid."""
    paths, violations = edit_paths(request)
    if violations:
        raise RequestInvalid(violations)
    for _ in range(_RACE_ATTEMPTS):
        record = await _target(queue, request.job_id)
        original = pb.SendRequest.FromString(record.payload)
        if original.HasField("media_group"):
            raise ChangeRefused(
                record.job_id,
                "an album cannot be edited through EditMessage: delete it and send a new one",
            )
        content = _merged(original, request, paths)
        violations = _check_edit_content(content, request, paths)
        if violations:
            raise RequestInvalid(violations)
        payload = content.SerializeToString(deterministic=True)
        if record.state in _QUEUED:
            if validate_only:
                return Change(record.job_id, written=False)
            rewritten = await queue.rewrite(
                record.job_id, _QUEUED, record.payload, payload, upload_ids(content)
            )
            if rewritten.status == Status.OK:
                return Change(record.job_id, written=True)
            continue
        if record.state not in _IN_FLIGHT:
            raise _not_deliverable(record, "edit")
        method = _edit_method(original, paths)
        if validate_only:
            return Change(record.job_id, written=False)
        rewritten = await queue.rewrite(record.job_id, _IN_FLIGHT, record.payload, payload)
        if rewritten.status in (RewriteCode.CHANGED, Status.WRONG_STATE):
            continue
        if rewritten.status != Status.OK:
            raise JobNotFound(record.job_id)
        edit_content = pb.SendRequest()
        edit_content.CopyFrom(content)
        edit_content.chat_id = record.chat_id
        for name in ("idempotency_key", "delay", "send_at"):
            edit_content.ClearField(name)
        job_id = await _enqueue_change(
            queue,
            record,
            original,
            edit_content,
            JobKind.EDIT,
            method,
            upload_ids(edit_content) if method == EDIT_MEDIA else (),
        )
        return Change(job_id, written=True)
    raise ChangeRefused(request.job_id, f"job {request.job_id} kept changing; try again")


async def _enqueue_change(
    queue: Queue,
    record: JobRecord,
    original: pb.SendRequest,
    content: pb.SendRequest,
    kind: JobKind,
    method: str = "",
    uploads: tuple[str, ...] = (),
) -> str:
    """Queue the edit or delete job of ``record`` (the send job): for its chat, at its
    priority and attempts, aimed at its messages; the new job's id."""
    [result] = await queue.enqueue(
        [
            NewJob(
                chat_id=record.chat_id,
                priority=original.priority,
                delay_ms=0,
                max_attempts=original.max_attempts,
                idempotency_key="",
                payload=content.SerializeToString(deterministic=True),
                kind=kind,
                edit_method=method,
                target_job_id=record.job_id,
                target_message_ids=_message_ids(record),
                upload_ids=uploads,
            )
        ]
    )
    return result.job_id


def _message_ids(record: JobRecord) -> tuple[int, ...]:
    if record.message_ids:
        return record.message_ids
    return (record.message_id,) if record.message_id else ()


async def delete_message(queue: Queue, job_id: str, *, validate_only: bool = False) -> Change:
    """Apply DeleteMessage (see the module's docstring); raises JobNotFound or
    ChangeRefused."""
    for _ in range(_RACE_ATTEMPTS):
        record = await _target(queue, job_id)
        if record.state in _QUEUED:
            if validate_only:
                return Change(job_id, written=False)
            states = await queue.cancel_many([job_id], _QUEUED)
            if states[0]:
                return Change(job_id, written=True)
            continue
        if record.state not in _IN_FLIGHT:
            raise _not_deliverable(record, "delete")
        if (
            record.state is JobState.COMPLETED
            and record.delivered_ms
            # Redis's clock: the delivery time was stamped by it too.
            and await queue.now_ms() - record.delivered_ms >= DELETE_WINDOW_S * 1000
        ):
            raise ChangeRefused(
                job_id,
                f"job {job_id} was delivered more than 48 hours ago: Telegram no longer "
                "deletes its message",
            )
        if validate_only:
            return Change(job_id, written=False)
        original = pb.SendRequest.FromString(record.payload)
        target = pb.SendRequest(chat_id=record.chat_id)
        change_id = await _enqueue_change(queue, record, original, target, JobKind.DELETE)
        return Change(change_id, written=True)
    raise ChangeRefused(job_id, f"job {job_id} kept changing; try again")

"""Jobs in the API's terms: a stored job as a ``pb.Job``, a request as a queue job."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from notigate import media
from notigate.queue import JobKind, JobRecord, JobState, NewJob
from notigate.queue.job_ids import bot_of
from notigate_client import pb

__all__ = ["KIND_TO_PB", "PB_TO_STATE", "STATE_TO_PB", "job_to_pb", "new_job", "timestamp"]

# Each stored state is the proto's state of the same name, so a new state is one JobState line.
STATE_TO_PB: dict[JobState, pb.JobState.ValueType] = {
    state: pb.JobState.Value("JOB_STATE_" + state.name) for state in JobState
}
PB_TO_STATE: dict[int, JobState] = {v: k for k, v in STATE_TO_PB.items()}
KIND_TO_PB: dict[JobKind, pb.JobKind.ValueType] = {
    kind: pb.JobKind.Value("JOB_KIND_" + kind.name) for kind in JobKind
}


def timestamp(ms: int) -> Timestamp:
    ts = Timestamp()
    ts.FromMilliseconds(ms)
    return ts


def job_to_pb(record: JobRecord) -> pb.Job:
    """The API view of a stored job."""
    job = pb.Job(
        job_id=record.job_id,
        bot=bot_of(record.job_id),
        state=STATE_TO_PB[record.state],
        attempts=record.attempts,
        max_attempts=record.max_attempts,
        last_error=record.last_error,
        telegram_message_id=record.message_id,
        request=pb.SendRequest.FromString(record.payload),
        chat_id=record.chat_id,
        stalls=record.stalls,
        kind=KIND_TO_PB[record.kind],
        target_job_id=record.target_job_id,
        telegram_message_ids=record.message_ids
        or ((record.message_id,) if record.state is JobState.COMPLETED else ()),
    )
    job.create_time.CopyFrom(timestamp(record.created_ms))
    job.update_time.CopyFrom(timestamp(record.updated_ms))
    if record.delivered_ms:
        job.deliver_time.CopyFrom(timestamp(record.delivered_ms))
    if record.state in (JobState.DELAYED, JobState.WAITING) and record.due_ms:
        job.scheduled_time.CopyFrom(timestamp(record.due_ms))
    return job


def new_job(request: pb.SendRequest) -> NewJob:
    """The queue's view of a validated request."""
    delay_ms = due_at_ms = 0
    # Round up: "no earlier than" the requested delay or time.
    if request.HasField("delay"):
        delay_ms = request.delay.seconds * 1000 + -(-request.delay.nanos // 1_000_000)
    if request.HasField("send_at"):
        # Passed on as a time, not as a delay from this gateway's clock: the script
        # compares it with Redis TIME, the clock every replica's scheduling uses.
        due_at_ms = request.send_at.seconds * 1000 + -(-request.send_at.nanos // 1_000_000)
    return NewJob(
        chat_id=request.chat_id,
        priority=request.priority,
        delay_ms=delay_ms,
        max_attempts=request.max_attempts,
        idempotency_key=request.idempotency_key,
        payload=request.SerializeToString(deterministic=True),
        due_at_ms=due_at_ms,
        weight=media.weight(request),
        upload_ids=media.upload_ids(request),
        ignore_suppression=request.ignore_suppression,
    )

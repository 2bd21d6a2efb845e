"""The queue's records: what goes into the scripts and what comes back, in Python terms.

A job lives in one Redis hash, ``<prefix>job:<id>``, with one-letter fields because the
hash is kept for every queued job (about 258 B per job in all; see docs/benchmarks.md):

====== =====================================================================
``p``  the SendRequest as received, serialized deterministically (the payload)
``ch`` the chat it goes to (differs from the payload's after a migration)
``pr`` priority (absent = 0)
``s``  state, one letter (:data:`STATE_LETTERS`)
``a``  attempts used (absent = 0); ``ma`` max attempts (absent = the server's default)
``st`` times its lease expired without an outcome (absent = 0)
``tk`` the current lease's token (absent = never leased)
``c``  creation time (ms); ``u`` last change (absent = ``c``); ``due`` when it was or
       is due (absent = ``c``); ``d`` delivery time
``e``  the last error; ``m`` Telegram's message id (an album's first), ``ms`` an
       album's message ids, comma-separated
``k``  kind: absent = send, ``e`` edit, ``r`` delete (:class:`JobKind`)
``n``  weight: the messages Telegram counts for it (an album's items; absent = 1)
``em`` an edit job's Bot API method; ``tg`` an edit or delete job's target job id;
       ``tm`` the target's message ids when the job was created (comma-separated)
``sk`` album items Telegram has already sent (absent = 0): never sent again
``up`` upload ids the payload references, space-separated (pinned while unfinished)
``is`` ``1``: sent with ignore_suppression (delivered even to a suppressed chat)
====== =====================================================================

Per chat, ``q:<chat>`` (zset of waiting job ids by rank), ``w:<chat>`` (list of recent
send times, newest first), ``cp:<chat>`` (paused until, after a 429) and ``jc:<chat>``
(zset of every retained job that goes to the chat, score: the job's number, so newest
last; added by enqueue, moved by a migration, removed when retention deletes the job;
SearchJobs reads it) sit beside the fixed keys of
:class:`~notigate.queue.keys.QueueKeys`, all under the queue's prefix.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

# Bytes of SHA-256 kept as a request's fingerprint: 2^-128 makes a chance match of two
# different requests under one key impossible in practice, at 16 bytes per stored key.
FINGERPRINT_LEN = 16


class JobState(StrEnum):
    """A job's state as stored in its hash (``s``)."""

    WAITING = "waiting"
    DELAYED = "delayed"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


# The one-letter codes the scripts store, and the Lua constants they read them by
# (spliced into every script that includes ``states``): the one table of the states.
STATE_LETTERS: dict[JobState, str] = {
    JobState.WAITING: "w",
    JobState.DELAYED: "d",
    JobState.ACTIVE: "a",
    JobState.COMPLETED: "c",
    JobState.FAILED: "f",
    JobState.CANCELLED: "x",
}
STATE_OF_LETTER: dict[str, JobState] = {code: state for state, code in STATE_LETTERS.items()}
# States whose listings start with the newest (the others start with the oldest or soonest).
NEWEST_FIRST = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})


class JobKind(StrEnum):
    """What a job does to Telegram, as stored in its hash (``k``; absent = send)."""

    SEND = ""
    EDIT = "e"
    DELETE = "r"


@dataclass(frozen=True, slots=True)
class NewJob:
    """A validated message ready to be stored.

    ``payload`` is the request as received, serialized deterministically: with an
    idempotency key, its fingerprint (:func:`fingerprint`) decides whether a repeat of the
    key is the same message, so it must not carry anything that differs between two
    sends of one request (such as the time it arrived).
    """

    chat_id: str
    priority: int
    delay_ms: int
    max_attempts: int
    idempotency_key: str
    payload: bytes
    # Absolute due time (ms since the epoch, 0 = none), compared with Redis TIME by the
    # script: the gateway's own clock may be off, Redis's is the one every replica shares.
    due_at_ms: int = 0
    kind: JobKind = JobKind.SEND
    # Messages Telegram counts for the job in its limits (an album of n counts n).
    weight: int = 1
    # Edit and delete jobs: the Bot API method (edits), the target send job, and the
    # target's message ids when known (else read from the target when leased).
    edit_method: str = ""
    target_job_id: str = ""
    target_message_ids: tuple[int, ...] = ()
    # Uploads the payload references: kept while the job is unfinished.
    upload_ids: tuple[str, ...] = ()
    # Sent even when the chat is suppressed (the caller knows it is reachable again).
    ignore_suppression: bool = False

    def extra_fields(self) -> list[tuple[str, str]]:
        """The hash fields beyond those every job has (see the field table above)."""
        extra: list[tuple[str, str]] = []
        if self.kind is not JobKind.SEND:
            extra.append(("k", self.kind.value))
        if self.weight > 1:
            extra.append(("n", str(self.weight)))
        if self.edit_method:
            extra.append(("em", self.edit_method))
        if self.target_job_id:
            extra.append(("tg", self.target_job_id))
        if self.target_message_ids:
            extra.append(("tm", ",".join(map(str, self.target_message_ids))))
        if self.upload_ids:
            extra.append(("up", " ".join(self.upload_ids)))
        if self.ignore_suppression:
            extra.append(("is", "1"))
        return extra


def fingerprint(payload: bytes) -> bytes:
    """What enqueue.lua stores with an idempotency key to recognise a repeat of the request.

    Every field of the request counts: a legitimate repeat (a client's retry) is the same
    request byte for byte, so any difference (text, chat, priority, delay, markup, even
    max_attempts) means the caller asks for something the first job will not do, and
    answering with the first job would drop that silently. The key itself is part of the
    payload too, which changes nothing: both requests carry the same key by definition.
    Only the payload is hashed, not the job's other fields: they are derived from it, and
    one of them (the delay, for a message due at a fixed time) from the time of arrival.
    """
    return hashlib.sha256(payload).digest()[:FINGERPRINT_LEN]


class EnqueueOutcome(StrEnum):
    """What storing one message did."""

    CREATED = "created"
    # The key came before with the same request: ``job_id`` is that first job.
    DUPLICATE = "duplicate"
    # The key came before with a different request: nothing is stored for this message,
    # ``job_id`` is the key's first job ("" when that is an unstored message of one batch).
    KEY_REUSED = "key_reused"


@dataclass(frozen=True, slots=True)
class Enqueued:
    """Outcome of storing one message."""

    job_id: str
    outcome: EnqueueOutcome = EnqueueOutcome.CREATED

    @property
    def duplicate(self) -> bool:
        """The message repeated an earlier one and ``job_id`` is that earlier job."""
        return self.outcome is EnqueueOutcome.DUPLICATE


@dataclass(frozen=True, slots=True)
class Lease:
    """A job taken for delivery; ``token`` proves the lease is still ours (unique across
    the life of the store), ``created_ms`` names the job even once the lease is lost (an
    id handed out again after the store lost its data belongs to a job created later)."""

    job_id: str
    token: str
    chat_id: str
    attempts: int
    payload: bytes
    created_ms: int
    kind: JobKind = JobKind.SEND
    # Album items Telegram has already sent: the attempt sends the rest.
    sent_items: int = 0
    edit_method: str = ""
    # Edit and delete jobs: the target's state (None: the target is gone) and message ids.
    target_state: JobState | None = None
    target_message_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class CompletedSend:
    """A send Telegram accepted, to be recorded on the job it was leased for."""

    lease: Lease
    message_id: int
    # Every message id of an album (message_id is the first); empty for one message.
    message_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class LeaseBatch:
    """What one dequeue call returned."""

    leases: list[Lease]
    # 0: more can be leased now; >0: ms until the next event; None: nothing scheduled.
    wait_ms: int | None
    # The bot-wide limit (or a bot-wide pause) stopped the leasing: nothing new
    # can be sent before wait_ms either.
    blocked: bool = False
    # Jobs the call failed because their chat is suppressed (none of them was leased).
    suppressed: int = 0


@dataclass(frozen=True, slots=True)
class ListCursor:
    """Where a listing of one state continues: after this job, at this index score."""

    score: float
    job_id: str


@dataclass(frozen=True, slots=True)
class Selected:
    """One page of a state's index walked by RetryJobs/CancelJobs (see select.lua)."""

    # Jobs that match: all of them, or the oldest when only a sample was asked for.
    job_ids: list[str]
    # How many jobs match (more than job_ids when only a sample was asked for).
    matched: int
    # (job id, payload) of jobs whose requested chat_id (in the payload, a serialized
    # SendRequest) decides whether they match.
    undecided: list[tuple[str, bytes]]
    # Where the next page starts; None when the index holds nothing further.
    cursor: ListCursor | None


class Recorded(StrEnum):
    """What recording one delivery did."""

    UNDER_LEASE = "under_lease"
    # The lease had expired (the job went back to a queue, and may have been leased and
    # sent again meanwhile): recorded all the same, so it is not sent once more.
    LEASE_LOST = "lease_lost"
    ALREADY_COMPLETED = "already_completed"
    # The job is gone: the store lost its data, or retention trimmed it meanwhile.
    NO_SUCH_JOB = "no_such_job"
    # The id now names another job (the store lost its data and handed the id out
    # again): nothing was recorded, the delivery is known to this process only.
    OTHER_JOB = "other_job"


class RetryOutcome(StrEnum):
    """What a transient failure led to."""

    SCHEDULED = "scheduled"
    FAILED = "failed"
    # The lease was no longer ours (or the job is gone): nothing was changed.
    LEASE_LOST = "lease_lost"


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job as stored in Redis."""

    job_id: str
    state: JobState
    chat_id: str
    attempts: int
    max_attempts: int
    stalls: int
    last_error: str
    message_id: int
    created_ms: int
    updated_ms: int
    delivered_ms: int
    due_ms: int
    payload: bytes
    kind: JobKind = JobKind.SEND
    target_job_id: str = ""
    # An album's message ids (empty for one message: message_id alone).
    message_ids: tuple[int, ...] = ()
    sent_items: int = 0


def message_ids_of(text: str) -> tuple[int, ...]:
    """Stored comma-separated message ids."""
    return tuple(int(part) for part in text.split(",") if part)


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Depths per state and lifetime counters."""

    counts: dict[JobState, int]
    totals: dict[str, int]
    paused_until_ms: int
    oldest_waiting_ms: int | None
    now_ms: int
    # Why the whole bot is paused ("" while it is not).
    paused_reason: str = ""
    # Chats messages are not sent to (they blocked the bot or were not found).
    suppressed_chats: int = 0


@dataclass(frozen=True, slots=True)
class SuppressedChat:
    """A chat later jobs are not sent to: Telegram's ``reason``, when (ms) and the job
    whose send found out."""

    chat_id: str
    reason: str
    suppressed_ms: int
    job_id: str


@dataclass(frozen=True, slots=True)
class SuppressionCursor:
    """Where a listing of suppressed chats (newest first) continues: after this chat,
    suppressed at this time (ms)."""

    suppressed_ms: int
    chat_id: str


def stored_int(value: bytes | None) -> int:
    """A stored number; absent or empty reads as 0."""
    return int(value) if value else 0


def stored_text(value: bytes | None) -> str:
    """A stored string; absent reads as ""."""
    return value.decode("utf-8", "replace") if value else ""


def decode_job_hash(job_id: str, h: dict[bytes, bytes], default_max_attempts: int) -> JobRecord:
    """The job whose hash (field table above) is ``h``."""
    return JobRecord(
        job_id=job_id,
        state=STATE_OF_LETTER[stored_text(h.get(b"s"))],
        chat_id=stored_text(h.get(b"ch")),
        attempts=stored_int(h.get(b"a")),
        max_attempts=stored_int(h.get(b"ma")) or default_max_attempts,
        stalls=stored_int(h.get(b"st")),
        last_error=stored_text(h.get(b"e")),
        message_id=stored_int(h.get(b"m")),
        created_ms=stored_int(h.get(b"c")),
        # Absent until the job first changes: the script saves the memory.
        updated_ms=stored_int(h.get(b"u") or h.get(b"c")),
        delivered_ms=stored_int(h.get(b"d")),
        due_ms=stored_int(h.get(b"due") or h.get(b"c")),
        payload=h.get(b"p", b""),
        kind=JobKind(stored_text(h.get(b"k"))),
        target_job_id=stored_text(h.get(b"tg")),
        message_ids=message_ids_of(stored_text(h.get(b"ms"))),
        sent_items=stored_int(h.get(b"sk")),
    )

"""Simulator state shared by the Bot API handlers and the control endpoints."""

from __future__ import annotations

import asyncio
import bisect
import math
import random
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from notigate.simulator.answers import ChatAnswer
from notigate.simulator.config import SimulatorConfig, config_with
from notigate.simulator.files import FileRegistry
from notigate.simulator.history import ChatHistory, StoredMessage
from notigate.simulator.limits import SendLimiter
from notigate.simulator.messages import markup_of, message_base, text_fields
from notigate.simulator.records import MessageRecord, RequestRecord, SentMessage, UploadTally
from notigate.simulator.wire import parse_chat

__all__ = ["Fault", "SimulatorState"]

MIGRATED = "Bad Request: group chat was upgraded to a supergroup chat"
CHAT_NOT_FOUND = "Bad Request: chat not found"
BLOCKED = "Forbidden: bot was blocked by the user"
# The answers block_chat can script, with the description Telegram gives by default.
_CHAT_FAULTS = {403: BLOCKED, 400: CHAT_NOT_FOUND}
_SERVER_ERRORS = ((500, "Internal Server Error"), (502, "Bad Gateway"))


@dataclass(frozen=True, slots=True)
class Fault:
    """A scripted error answer."""

    status: int
    description: str
    parameters: dict[str, Any] | None = None

    @property
    def retry_after(self) -> int | None:
        """The 429 wait, if this fault carries one."""
        if self.parameters is None:
            return None
        value = self.parameters.get("retry_after")
        return value if isinstance(value, int) else None


def too_many_requests(wait_s: float) -> Fault:
    """A 429 asking to wait ``ceil(wait_s)`` seconds, at least 1."""
    retry_after = max(1, math.ceil(wait_s))
    return Fault(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})


def _bot_id(token: str) -> int:
    head = token.partition(":")[0]
    # Tokens are "<bot id>:<secret>"; tolerate odd test tokens with a stable stand-in.
    return int(head) if head.isdigit() else zlib.crc32(token.encode())


class SimulatorState:
    """Tokens, records, scripted faults, limits and message ids of one simulator.

    Attributes:
        messages: accepted sends, in acceptance order (``seq`` ascending).
        requests: every Bot API request with its HTTP status.
        instance: a random id of this simulator; a reader polling by ``seq`` sees it
            change when the simulator was restarted and ``seq`` began again at 1.
    """

    def __init__(self, tokens: Iterable[str], config: SimulatorConfig | None = None) -> None:
        self._config = config if config is not None else SimulatorConfig()
        self._rng = random.Random(self._config.seed)
        self._tokens: set[str] = set(tokens)
        self._users: dict[str, dict[str, Any]] = {}
        self.messages: list[SentMessage] = []
        self.requests: list[RequestRecord] = []
        self._status_counts: Counter[int] = Counter()
        self._blocked: dict[str, Fault] = {}
        self._chat_answers: dict[str, ChatAnswer] = {}
        self._migrated: dict[str, int] = {}
        self._storm_until = 0.0
        self._storm_retry_after = 1
        self._message_ids: dict[str, int] = {}
        self._seq = 0
        # Futures of long-polling readers, woken by the next accepted send. Futures rather
        # than one asyncio.Event: each is made by its reader's running loop.
        self._waiters: list[asyncio.Future[None]] = []
        # False while the server stops: a long poll must not hold up its shutdown.
        self.readers_may_wait = True
        self.instance = uuid.uuid4().hex
        self.limiter = SendLimiter()
        self.files = FileRegistry()
        self.history = ChatHistory(self._stored_text)
        self._users_by_id: dict[int, dict[str, Any]] = {}
        self._uploads: dict[int, UploadTally] = {}
        self._album_faults: dict[str, tuple[int, str]] = {}
        self._clock_offset = 0.0
        self._media_groups = 0

    # -- configuration and scripted faults ---------------------------------------------

    @property
    def config(self) -> SimulatorConfig:
        """The current configuration."""
        return self._config

    def configure(self, **changes: Any) -> SimulatorConfig:
        """Replace config fields at run time; a new ``seed`` restarts the random sequence.

        Raises:
            ValueError: unknown field or invalid value.
        """
        self._config = config_with(self._config, changes)
        if "seed" in changes:
            self._rng = random.Random(self._config.seed)
        return self._config

    def revoke_token(self, token: str) -> None:
        """Answer 401 to this token from now on."""
        self._tokens.discard(token)

    def accept_token(self, token: str) -> None:
        """Accept this token (again)."""
        self._tokens.add(token)

    def is_active(self, token: str) -> bool:
        """Whether requests with this token are served."""
        return token in self._tokens

    def block_chat(self, chat_id: str, description: str | None = None, status: int = 403) -> None:
        """Answer sends to ``chat_id`` with ``status`` (403 or 400) and ``description``.

        The default descriptions are Telegram's: 403 "Forbidden: bot was blocked by the
        user", 400 "Bad Request: chat not found".

        Raises:
            ValueError: ``status`` is neither 400 nor 403.
        """
        default = _CHAT_FAULTS.get(status)
        if default is None:
            raise ValueError(f"status must be 400 or 403, got {status}")
        self._blocked[chat_id] = Fault(status, default if description is None else description)

    def unblock_chat(self, chat_id: str) -> bool:
        """Serve sends to ``chat_id`` normally again (no block, no scripted answer or
        429); False when none was set."""
        answer = self._chat_answers.pop(chat_id, None)
        return self._blocked.pop(chat_id, None) is not None or answer is not None

    def rate_limit_chat(self, chat_id: str, retry_after: int) -> None:
        """Answer every send to ``chat_id`` with 429 and ``retry_after`` (that chat's own
        flood wait: other chats are served) until :meth:`unblock_chat` or :meth:`reset`.

        Raises:
            ValueError: ``retry_after`` < 1.
        """
        if retry_after < 1:
            raise ValueError(f"retry_after must be >= 1, got {retry_after}")
        self._blocked[chat_id] = too_many_requests(retry_after)

    def script_answer(self, chat_id: str, answer: ChatAnswer) -> None:
        """Answer every send to ``chat_id`` with ``answer`` (see
        :mod:`notigate.simulator.answers`) until :meth:`unblock_chat` or :meth:`reset`.
        With ``answer.deliver`` the send goes through every check and is recorded as
        accepted first, as a message Telegram sent but answered oddly about."""
        self._chat_answers[chat_id] = answer

    def scripted_answer(self, chat_id: str | None) -> ChatAnswer | None:
        """The odd answer scripted for ``chat_id``, if any."""
        return None if chat_id is None else self._chat_answers.get(chat_id)

    def migrate_chat(self, old_chat_id: str, new_chat_id: str) -> None:
        """Answer sends to ``old_chat_id`` with 400 and ``migrate_to_chat_id``.

        Raises:
            ValueError: ``new_chat_id`` is not a numeric chat id.
        """
        self._migrated[old_chat_id] = int(new_chat_id)

    def rate_limit_storm(self, seconds: float, retry_after: int) -> None:
        """Answer every send with 429 ``retry_after`` for the next ``seconds``."""
        self._storm_until = time.monotonic() + seconds
        self._storm_retry_after = max(1, int(retry_after))

    def fail_album_item(self, chat_id: str, position: int, description: str) -> None:
        """Make the next album to ``chat_id`` fail at item ``position`` (1-based) with
        ``description``, once: the items before it are sent, the later ones are not, and
        the answer is 400 ``Bad Request: failed to send message #<position> with the error
        message "<description>"``. An album of fewer items uses the fault up and succeeds.

        Raises:
            ValueError: ``position`` < 1 or an empty description.
        """
        if position < 1:
            raise ValueError(f"position must be >= 1, got {position}")
        if not description:
            raise ValueError("description must be non-empty")
        self._album_faults[chat_id] = (position, description)

    def take_album_fault(self, chat_id: str) -> tuple[int, str] | None:
        """The scripted album-item fault of ``chat_id``, used up by this call."""
        return self._album_faults.pop(chat_id, None) if self._album_faults else None

    def advance_clock(self, seconds: float) -> float:
        """Move the simulated wall clock (message dates, the 48-hour delete rule) ahead by
        ``seconds``; rate windows keep using the monotonic clock. Returns the total offset.

        Raises:
            ValueError: ``seconds`` negative or not finite.
        """
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"seconds must be a finite number >= 0, got {seconds}")
        self._clock_offset += seconds
        return self._clock_offset

    def wall_time(self) -> float:
        """The simulated wall clock: ``time.time()`` plus what :meth:`advance_clock` added."""
        return time.time() + self._clock_offset

    def reset(self) -> None:
        """Clear records, scripted faults, limit windows, chats' messages, issued files,
        upload counts and the clock offset; keep tokens, config, ids."""
        self.messages.clear()
        self.requests.clear()
        self._status_counts.clear()
        self._blocked.clear()
        self._chat_answers.clear()
        self._migrated.clear()
        self._storm_until = 0.0
        self.limiter.clear()
        self.history.clear()
        self.files.clear()
        self._uploads.clear()
        self._album_faults.clear()
        self._clock_offset = 0.0

    # -- what chats show, what was uploaded -----------------------------------------------

    def message(self, chat_id: str, message_id: int) -> MessageRecord | None:
        """The current state of a message sent to ``chat_id`` (deleted ones included)."""
        chat = parse_chat(chat_id)
        stored = None if chat is None else self.history.get(chat.key, message_id)
        return None if stored is None else stored.record()

    def chat_messages(self, chat_id: str, include_deleted: bool = False) -> list[MessageRecord]:
        """What ``chat_id`` shows now, by message id (deleted messages only if asked)."""
        chat = parse_chat(chat_id)
        if chat is None:
            return []
        return [m.record() for m in self.history.chat(chat.key) if include_deleted or not m.deleted]

    def count_upload(self, token: str, size: int) -> None:
        """Count one uploaded file part of ``size`` bytes for the bot of ``token``."""
        bot_id = self.bot_id(token)
        tally = self._uploads.get(bot_id, UploadTally())
        self._uploads[bot_id] = UploadTally(tally.count + 1, tally.bytes + size)

    def revoke_file_id(self, file_id: str) -> bool:
        """Refuse ``file_id`` from now on ("wrong file identifier"), as Telegram may
        refuse an old one; uploading the same content again issues it anew."""
        return self.files.revoke(file_id)

    def uploads(self, bot: str | int) -> UploadTally:
        """File parts (and their bytes) the bot uploaded: ``bot`` is its token or id."""
        bot_id = bot if isinstance(bot, int) else self.bot_id(bot)
        return self._uploads.get(bot_id, UploadTally())

    def all_uploads(self) -> dict[int, UploadTally]:
        """Upload tallies by bot id."""
        return dict(self._uploads)

    def next_media_group_id(self) -> str:
        """A fresh album id, digits like Telegram's."""
        self._media_groups += 1
        return str(13_000_000_000_000_000 + self._media_groups)

    def requests_to(self, chat_id: str) -> list[RequestRecord]:
        """Every Bot API request addressed to ``chat_id``, answered or refused, oldest
        first (a test proves with it that a job never reached the chat)."""
        return [r for r in self.requests if r.chat_id == chat_id]

    def count_status(self, status: int) -> int:
        """How many Bot API requests were answered with HTTP ``status``."""
        return self._status_counts[status]

    def stats(self) -> dict[str, Any]:
        """Request counts by status and method, and the number of accepted sends."""
        return {
            "requests": len(self.requests),
            "accepted": len(self.messages),
            "by_status": {str(k): v for k, v in sorted(self._status_counts.items())},
            "by_method": dict(Counter(r.method for r in self.requests)),
        }

    # -- hot path ------------------------------------------------------------------------

    def _stored_text(self, sent: SentMessage) -> StoredMessage:
        """The Message object sendMessage returned for ``sent``, rebuilt."""
        chat = parse_chat(sent.chat_id)
        if chat is None:  # a recorded send had a valid chat
            raise ValueError(f"not a chat id: {sent.chat_id!r}")
        user = self._users_by_id.get(sent.bot_id) or {"id": sent.bot_id, "is_bot": True}
        message = message_base(user, chat, sent.params, sent.message_id, sent.date)
        message.update(text_fields(sent.params, sent.text))
        markup = markup_of(sent.params)
        if markup is not None:
            message["reply_markup"] = markup
        mode = sent.params.get("parse_mode")
        mode = mode.lower() if isinstance(mode, str) and mode.lower() != "none" else None
        entities = sent.params.get("entities")
        return StoredMessage(sent.bot_id, sent.chat_id, message, mode or None, entities)

    def bot_id(self, token: str) -> int:
        """The bot's numeric id: the token's part before the colon."""
        return int(self.bot_user(token)["id"])

    def bot_user(self, token: str) -> dict[str, Any]:
        """The User object getMe returns for ``token``."""
        user = self._users.get(token)
        if user is None:
            user = self._users[token] = {
                "id": _bot_id(token),
                "is_bot": True,
                "first_name": "notigate sandbox",
                "username": "notigate_sandbox_bot",
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
                "can_connect_to_business": False,
                "has_main_web_app": False,
            }
            self._users_by_id[user["id"]] = user
        return user

    def record(
        self,
        method: str,
        chat_id: str | None,
        status: int,
        now: float,
        retry_after: int | None = None,
    ) -> None:
        """Remember one answered request."""
        self.requests.append(RequestRecord(method, chat_id, status, now, retry_after))
        self._status_counts[status] += 1

    def scripted_fault(self, chat_id: str | None, now: float) -> Fault | None:
        """Storm, then random 5xx, then blocked / missing / migrated chat."""
        if now < self._storm_until:
            return too_many_requests(self._storm_retry_after)
        config = self._config
        if config.error_rate > 0.0 and self._rng.random() < config.error_rate:
            return Fault(*self._rng.choice(_SERVER_ERRORS))
        if chat_id is None:
            return None
        blocked = self._blocked.get(chat_id)
        if blocked is not None:
            return blocked
        if chat_id in config.missing_chats:
            return Fault(400, CHAT_NOT_FOUND)
        new_id = self._migrated.get(chat_id)
        if new_id is not None:
            return Fault(400, MIGRATED, {"migrate_to_chat_id": new_id})
        return None

    def next_message_id(self, chat_key: str) -> int:
        """Message ids increase per chat, starting at 1."""
        message_id = self._message_ids.get(chat_key, 0) + 1
        self._message_ids[chat_key] = message_id
        return message_id

    def accept(
        self,
        chat_id: str,
        text: str,
        message_id: int,
        params: dict[str, Any],
        now: float,
        method: str,
        date: float | None = None,
        *,
        kind: str = "text",
        file_id: str | None = None,
        media_group_id: str | None = None,
        bot_id: int = 0,
        record_request: bool = True,
    ) -> SentMessage:
        """Record an accepted send (``date``: simulated wall-clock time, default now;
        ``record_request`` False for album items, which share one request)."""
        self._seq += 1
        wall = self.wall_time() if date is None else date
        sent = SentMessage(
            chat_id,
            text,
            message_id,
            params,
            now,
            wall,
            self._seq,
            kind,
            file_id,
            media_group_id,
            bot_id,
        )
        self.messages.append(sent)
        if record_request:
            self.record(method, chat_id, 200, now)
        self._wake_readers()
        return sent

    def _wake_readers(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def release_readers(self) -> None:
        """Answer every waiting long poll now, and later ones at once (before a stop)."""
        self.readers_may_wait = False
        self._wake_readers()

    # -- reading what was accepted --------------------------------------------------------

    def messages_after(self, after: int = 0, chat_id: str | None = None) -> list[SentMessage]:
        """Accepted sends with ``seq > after`` (to ``chat_id`` only, if given), oldest first."""
        start = bisect.bisect_right(self.messages, after, key=lambda m: m.seq)
        found = self.messages[start:]
        if chat_id is not None:
            found = [m for m in found if m.chat_id == chat_id]
        return found

    async def wait_messages(
        self, after: int = 0, chat_id: str | None = None, timeout_s: float = 0.0
    ) -> list[SentMessage]:
        """:meth:`messages_after`, waiting up to ``timeout_s`` for one when there is none."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not (found := self.messages_after(after, chat_id)):
            remaining = deadline - loop.time()
            if remaining <= 0 or not self.readers_may_wait:
                break
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                break
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        return found

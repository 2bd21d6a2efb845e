"""The bots one gateway serves, each with a queue of its own.

Telegram's limits, pauses and 429 breaker are per bot, so each bot has its own
:class:`~notigate.queue.Queue` (under its own hash tag), uploads, event stream and, in the
gateway, its own sender and dispatcher. Requests pick a bot by name (an empty name is the
bot named ``default``, or the only bot); calls about a job find the bot in the job id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from notigate.config import DEFAULT_BOT, Settings
from notigate.events.stream import EventStream, EventTail
from notigate.group_commit import GroupCommit
from notigate.queue import Enqueued, NewJob, Queue
from notigate.queue.job_ids import bot_of
from notigate.uploads import UploadStore

if TYPE_CHECKING:
    from notigate.webhooks import WebhookWorker


class UnknownBot(LookupError):
    """A request named a bot the gateway does not serve."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        if name:
            text = f"no bot {name!r}: the bots are {', '.join(known)}"
        else:
            text = (
                f"name the bot: this gateway serves {', '.join(known)} and none is {DEFAULT_BOT!r}"
            )
        super().__init__(text)


@dataclass(eq=False)
class Bot:
    """What the API reaches of one bot."""

    name: str
    # The gateway's settings as this bot sees them (Settings.for_bot).
    settings: Settings
    queue: Queue
    uploads: UploadStore
    # The bot's event stream, and the one blocking reader caught-up watchers wait on.
    events: EventStream
    event_tail: EventTail
    # Posts the bot's events to the webhook (None: no webhook configured).
    webhooks: WebhookWorker | None = None
    # False while Telegram rejects the bot's token (the gateway's health monitor says).
    token_ok: Callable[[], bool] = lambda: True
    # Concurrent Sends share one enqueue script call (the script takes batches), each
    # standing alone in it: one Send's reused idempotency key fails that Send only.
    sends: GroupCommit[NewJob, Enqueued] = field(init=False)

    def __post_init__(self) -> None:
        queue = self.queue
        self.sends = GroupCommit(
            lambda jobs: queue.enqueue(jobs, all_or_nothing=False),
            max_items=self.settings.max_batch,
            linger_s=self.settings.send_linger_ms / 1000,
        )


class Bots(Mapping[str, Bot]):
    """The gateway's bots by name, in the configuration's order."""

    def __init__(self, bots: list[Bot]) -> None:
        if not bots:
            raise ValueError("a gateway serves at least one bot")
        self._bots = {bot.name: bot for bot in bots}

    def __getitem__(self, name: str) -> Bot:
        return self._bots[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._bots)

    def __len__(self) -> int:
        return len(self._bots)

    def pick(self, name: str) -> Bot:
        """The bot ``name`` names ('' = the default bot, or the only one).

        Raises:
            UnknownBot: no such bot (or '' with several bots and none named default).
        """
        if not name and len(self._bots) == 1:
            return next(iter(self._bots.values()))
        bot = self._bots.get(name or DEFAULT_BOT)
        if bot is None:
            raise UnknownBot(name, list(self._bots))
        return bot

    def of_job(self, job_id: str) -> Bot | None:
        """The bot of a (well-formed) job id; None when the gateway serves no such bot."""
        return self._bots.get(bot_of(job_id))

    @property
    def default(self) -> Bot:
        """The bot an empty name picks, or the first one configured."""
        return self._bots.get(DEFAULT_BOT) or next(iter(self._bots.values()))

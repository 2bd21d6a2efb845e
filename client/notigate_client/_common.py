"""What the sync and async clients share: request building, channel setup, retry policy."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Literal, TypeAlias, TypedDict

import grpc

from notigate_client._proto.notigate.v1 import notification_pb2 as pb
from notigate_client.errors import NotigateError, UnavailableError
from notigate_client.media import MediaGroupLike
from notigate_client.media import media_group as build_media_group

ParseModeLike: TypeAlias = "pb.ParseMode.ValueType | Literal['HTML', 'MarkdownV2', 'Markdown']"
JobStateLike: TypeAlias = "pb.JobState.ValueType"
Metadata: TypeAlias = tuple[tuple[str, str], ...]


class SendOptions(TypedDict, total=False):
    """The keyword arguments of ``send`` besides ``chat_id``, ``text`` and ``wait`` (for
    its typed overloads)."""

    parse_mode: ParseModeLike | None
    priority: int
    delay: float | timedelta | None
    send_at: datetime | None
    idempotency_key: str | None
    max_attempts: int
    disable_notification: bool
    protect_content: bool
    message_thread_id: int
    reply_markup: pb.InlineKeyboardMarkup | None
    link_preview: pb.LinkPreviewOptions | None
    allow_paid_broadcast: bool
    media: pb.Media | None
    media_group: MediaGroupLike | None
    bot: str | None


# Telegram's spellings of the parse modes, as the client and its CLI accept them.
PARSE_MODES: Mapping[str, pb.ParseMode.ValueType] = MappingProxyType(
    {
        "HTML": pb.PARSE_MODE_HTML,
        "MarkdownV2": pb.PARSE_MODE_MARKDOWN_V2,
        "Markdown": pb.PARSE_MODE_MARKDOWN,
    }
)


def parse_mode_value(mode: ParseModeLike | None) -> pb.ParseMode.ValueType:
    """The enum value for ``mode``; accepts Telegram's spellings ("HTML", "MarkdownV2")."""
    if mode is None:
        return pb.PARSE_MODE_UNSPECIFIED
    if isinstance(mode, str):
        try:
            return PARSE_MODES[mode]
        except KeyError:
            raise ValueError(f"unknown parse_mode {mode!r}") from None
    return mode


def build_send_request(
    chat_id: str | int,
    text: str,
    *,
    parse_mode: ParseModeLike | None = None,
    priority: int = 0,
    delay: float | timedelta | None = None,
    idempotency_key: str | None = None,
    max_attempts: int = 0,
    disable_notification: bool = False,
    protect_content: bool = False,
    message_thread_id: int = 0,
    reply_markup: pb.InlineKeyboardMarkup | None = None,
    link_preview: pb.LinkPreviewOptions | None = None,
    allow_paid_broadcast: bool = False,
    media: pb.Media | None = None,
    media_group: MediaGroupLike | None = None,
    bot: str = "",
) -> pb.SendRequest:
    """Build a SendRequest from keyword arguments (limits are checked by the server).

    With ``media``, ``text`` is its caption; with ``media_group`` (an album) it must be
    empty. ``bot`` names the bot that sends it ("": the gateway's default bot).
    """
    req = pb.SendRequest(
        chat_id=str(chat_id),
        text=text,
        parse_mode=parse_mode_value(parse_mode),
        priority=priority,
        idempotency_key=idempotency_key or "",
        max_attempts=max_attempts,
        disable_notification=disable_notification,
        protect_content=protect_content,
        message_thread_id=message_thread_id,
        allow_paid_broadcast=allow_paid_broadcast,
        bot=bot,
    )
    if delay is not None:
        # timedelta keeps microseconds exact; a float goes through it for the same rounding.
        td = delay if isinstance(delay, timedelta) else timedelta(seconds=delay)
        req.delay.FromTimedelta(td)
    if reply_markup is not None:
        req.reply_markup.CopyFrom(reply_markup)
    if link_preview is not None:
        req.link_preview.CopyFrom(link_preview)
    if media is not None:
        req.media.CopyFrom(media)
    if media_group is not None:
        req.media_group.CopyFrom(build_media_group(media_group))
    return req


def build_edit_request(
    job_id: str,
    *,
    text: str | None = None,
    parse_mode: ParseModeLike | None = None,
    reply_markup: pb.InlineKeyboardMarkup | None = None,
    media: pb.Media | None = None,
    link_preview: pb.LinkPreviewOptions | None = None,
    remove_keyboard: bool = False,
    update_mask: Sequence[str] | None = None,
    validate_only: bool = False,
) -> pb.EditMessageRequest:
    """An EditMessageRequest whose update_mask names exactly what changes.

    Without ``update_mask`` the mask lists the arguments given (not None), so a field left
    out keeps its value; ``text=""`` clears a caption and ``remove_keyboard`` drops the
    inline keyboard. An explicit ``update_mask`` (paths ``text``, ``parse_mode``,
    ``reply_markup``, ``media``, ``link_preview``) is sent as it is: a path whose argument
    is not given clears that field.

    Raises:
        ValueError: nothing would change, or ``remove_keyboard`` with a ``reply_markup``.
    """
    if remove_keyboard and reply_markup is not None:
        raise ValueError("give reply_markup or remove_keyboard, not both")
    req = pb.EditMessageRequest(job_id=job_id, validate_only=validate_only)
    paths: list[str] = []
    if text is not None:
        req.text = text
        paths.append("text")
    if parse_mode is not None:
        req.parse_mode = parse_mode_value(parse_mode)
        paths.append("parse_mode")
    if reply_markup is not None:
        req.reply_markup.CopyFrom(reply_markup)
    if reply_markup is not None or remove_keyboard:
        paths.append("reply_markup")
    if media is not None:
        req.media.CopyFrom(media)
        paths.append("media")
    if link_preview is not None:
        req.link_preview.CopyFrom(link_preview)
        paths.append("link_preview")
    if update_mask is not None:
        paths = list(update_mask)
    if not paths:
        raise ValueError("the edit changes nothing: give a field, remove_keyboard or update_mask")
    req.update_mask.paths.extend(paths)
    return req


def with_idempotency_key(req: pb.SendRequest) -> pb.SendRequest:
    """``req`` unchanged if it has a key, else a copy with a fresh uuid4 key.

    The key is fixed before the first attempt, so a retry after a lost response finds the job
    the first attempt created instead of creating a second one. The caller's message is
    never modified.
    """
    if req.idempotency_key:
        return req
    keyed = pb.SendRequest()
    keyed.CopyFrom(req)
    keyed.idempotency_key = str(uuid.uuid4())
    return keyed


def with_bot(req: pb.SendRequest, bot: str) -> pb.SendRequest:
    """``req`` unchanged if it names a bot (or ``bot`` is empty), else a copy naming ``bot``.

    The caller's message is never modified: it may be sent again with another default.
    """
    if req.bot or not bot:
        return req
    named = pb.SendRequest()
    named.CopyFrom(req)
    named.bot = bot
    return named


def batch_request(
    requests: Sequence[pb.SendRequest], validate_only: bool = False, bot: str = ""
) -> pb.SendBatchRequest:
    """A SendBatchRequest where every message has an idempotency key, and those that name
    no bot name ``bot``."""
    return pb.SendBatchRequest(
        messages=[with_idempotency_key(with_bot(r, bot)) for r in requests],
        validate_only=validate_only,
    )


def list_request(
    state: JobStateLike | None, page_size: int, page_token: str, bot: str = ""
) -> pb.ListJobsRequest:
    """One ListJobs page request."""
    return pb.ListJobsRequest(
        state=state if state is not None else pb.JOB_STATE_UNSPECIFIED,
        page_size=page_size,
        page_token=page_token,
        bot=bot,
    )


def bot_of_job(job_id: str) -> str:
    """The bot a job id names: ``"support"`` for ``"support:123"``, ``""`` (the default
    bot) for a decimal id."""
    name, sep, _ = job_id.rpartition(":")
    return name if sep else ""


# gRPC waits up to 120 s between attempts to reach a gateway that refused connections, and
# calls fail at once meanwhile: a watch or a retry would miss a restarted gateway for that
# long. 5 s is the clients' own longest backoff.
CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (("grpc.max_reconnect_backoff_ms", 5000),)


def call_metadata(token: str | None) -> Metadata:
    """Per-call metadata: the bearer token when one is configured."""
    return (("authorization", f"Bearer {token}"),) if token else ()


def channel_credentials(
    tls: bool | grpc.ChannelCredentials, root_certificates: bytes | None
) -> grpc.ChannelCredentials | None:
    """Credentials for a secure channel, or None for plaintext.

    ``root_certificates`` implies TLS; combining it with ready-made credentials is ambiguous.
    """
    if isinstance(tls, bool):
        if tls or root_certificates is not None:
            return grpc.ssl_channel_credentials(root_certificates=root_certificates)
        return None
    if root_certificates is not None:
        raise ValueError("pass root_certificates or ChannelCredentials, not both")
    return tls


@dataclass(frozen=True)
class RetryPolicy:
    """Retry UNAVAILABLE only, with capped exponential backoff and full jitter.

    Other codes are not retried: they will not change on a retry, or (DEADLINE_EXCEEDED) the
    request may have been carried out and the caller should decide.
    """

    retries: int = 3
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 5.0
    multiplier: float = 2.0

    def delays(self) -> Iterator[float]:
        """Upper bounds of the waits before each retry."""
        backoff = self.initial_backoff_s
        for _ in range(self.retries):
            yield backoff
            backoff = min(backoff * self.multiplier, self.max_backoff_s)

    def wait_s(self, bound_s: float, err: NotigateError) -> float | None:
        """Seconds to wait before retrying after ``err``, or None to give up."""
        if not isinstance(err, UnavailableError):
            return None
        # Full jitter spreads out clients that failed together; a server hint is a minimum.
        wait = random.uniform(0, bound_s)
        if err.retry_after_s is not None:
            wait = max(wait, min(err.retry_after_s, self.max_backoff_s))
        return wait

"""Deliver one message through the Bot API and classify what happened.

:meth:`TelegramSender.send` never raises for Telegram or transport errors; it returns an
:data:`Outcome` the worker turns into a retry, a pause, a migration or a final state.
"""

from __future__ import annotations

import datetime as dtm
import logging
import re
import warnings
from dataclasses import dataclass
from typing import Any, cast

import telegram
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.warnings import PTBDeprecationWarning

from notigate.transport import (
    AiohttpRequest,
    FloodControlExceeded,
    last_error_description,
    redact_url,
    reset_last_error,
)
from notigate_client import pb

__all__ = [
    "Delivered",
    "Migrated",
    "Outcome",
    "PermanentError",
    "RateLimited",
    "TelegramSender",
    "TransientError",
    "Unauthorized",
]


@dataclass(frozen=True, slots=True)
class Delivered:
    """Telegram accepted the message."""

    message_id: int


@dataclass(frozen=True, slots=True)
class RateLimited:
    """429: wait ``retry_after_s`` before sending to this chat again (not a failed attempt)."""

    retry_after_s: float


@dataclass(frozen=True, slots=True)
class Migrated:
    """The group became a supergroup; resend to ``new_chat_id``."""

    new_chat_id: str


@dataclass(frozen=True, slots=True)
class PermanentError:
    """400/403: retrying will not help. ``description`` is Telegram's text, verbatim."""

    description: str


@dataclass(frozen=True, slots=True)
class TransientError:
    """5xx, timeout, connection failure or anything unexpected: retry with backoff."""

    description: str


@dataclass(frozen=True, slots=True)
class Unauthorized:
    """401/404: the token is wrong or revoked; stop delivering."""

    description: str


Outcome = Delivered | RateLimited | Migrated | PermanentError | TransientError | Unauthorized

_PARSE_MODES: dict[int, str] = {
    pb.PARSE_MODE_HTML: "HTML",
    pb.PARSE_MODE_MARKDOWN_V2: "MarkdownV2",
    pb.PARSE_MODE_MARKDOWN: "Markdown",
}
_NUMERIC_CHAT = re.compile(r"-?[0-9]+")
# PTB logs its base URL, which contains the token, at DEBUG when a Bot is built.
_PTB_LOGGER = logging.getLogger("telegram.Bot")


class _RedactToken(logging.Filter):
    """Rewrites log records of PTB's Bot logger so the token never reaches a handler."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self._token in message:
            record.msg = message.replace(self._token, "<token>")
            record.args = None
        return True


def _chat_id(chat_id: str) -> int | str:
    return int(chat_id) if _NUMERIC_CHAT.fullmatch(chat_id) else chat_id


def _button(button: pb.InlineKeyboardButton) -> telegram.InlineKeyboardButton:
    action = button.WhichOneof("action")
    if action == "url":
        return telegram.InlineKeyboardButton(button.text, url=button.url)
    if action == "callback_data":
        return telegram.InlineKeyboardButton(button.text, callback_data=button.callback_data)
    if action == "switch_inline_query":
        return telegram.InlineKeyboardButton(
            button.text, switch_inline_query=button.switch_inline_query
        )
    if action == "switch_inline_query_current_chat":
        return telegram.InlineKeyboardButton(
            button.text,
            switch_inline_query_current_chat=button.switch_inline_query_current_chat,
        )
    if action == "copy_text":
        return telegram.InlineKeyboardButton(
            button.text, copy_text=telegram.CopyTextButton(button.copy_text)
        )
    # No action: let Telegram judge it, as it would judge any other malformed button.
    return telegram.InlineKeyboardButton(button.text)


def _reply_markup(request: pb.SendRequest) -> telegram.InlineKeyboardMarkup | None:
    if not request.HasField("reply_markup") or not request.reply_markup.rows:
        return None
    return telegram.InlineKeyboardMarkup(
        [[_button(b) for b in row.buttons] for row in request.reply_markup.rows]
    )


def _link_preview(request: pb.SendRequest) -> telegram.LinkPreviewOptions | None:
    if not request.HasField("link_preview"):
        return None
    lp = request.link_preview
    return telegram.LinkPreviewOptions(
        is_disabled=lp.is_disabled or None,
        url=lp.url or None,
        prefer_small_media=lp.prefer_small_media or None,
        prefer_large_media=lp.prefer_large_media or None,
        show_above_text=lp.show_above_text or None,
    )


def _retry_after_s(exc: RetryAfter) -> float:
    if isinstance(exc, FloodControlExceeded):
        return float(exc.retry_after_s)
    # Reading the attribute warns unless PTB_TIMEDELTA is set; its type differs too.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    if isinstance(value, dtm.timedelta):
        return value.total_seconds()
    return float(value)


class _GatewayBot(telegram.Bot):
    """A Bot whose sendMessage returns Telegram's raw result.

    The gateway needs only the message id; building a ``telegram.Message`` from
    the answer cost more CPU than the HTTP request itself (py-spy: 17% of a
    delivery). Requests, error mapping (RetryAfter, ChatMigrated, Forbidden...)
    and parameter encoding are PTB's own, through ``Bot._post``.
    """

    async def send_message_raw(self, data: dict[str, Any]) -> dict[str, Any]:
        """POST sendMessage with ``data`` (None values dropped) and return the result."""
        result = await self._post("sendMessage", data)
        return cast(dict[str, Any], result)


class TelegramSender:
    """One bot token's connection to the Bot API (``api_url`` is the root, without ``/bot``).

    Args:
        token: the bot token; it is redacted from every description this class returns.
        api_url: e.g. ``"https://api.telegram.org"`` or a simulator's ``base_url``.
        pool_size: most simultaneous HTTP connections.
        connect_timeout_s: connecting, and waiting for a pooled connection.
        read_timeout_s: waiting for Telegram's answer.
    """

    def __init__(
        self,
        token: str,
        api_url: str,
        *,
        pool_size: int = 64,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 15.0,
    ) -> None:
        self._token = token
        self._api_url = api_url.rstrip("/")
        self._pool_size = pool_size
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._request: AiohttpRequest | None = None
        self._bot: _GatewayBot | None = None
        self._log_filter = _RedactToken(token)

    async def start(self) -> None:
        """Open the HTTP pool and build the Bot; makes no request (no getMe)."""
        if self._bot is not None:
            return
        request = AiohttpRequest(
            connection_pool_size=self._pool_size,
            read_timeout=self._read_timeout_s,
            write_timeout=self._read_timeout_s,
            connect_timeout=self._connect_timeout_s,
            pool_timeout=self._connect_timeout_s,
        )
        await request.initialize()
        _PTB_LOGGER.addFilter(self._log_filter)
        # The same request object serves getUpdates too, so PTB builds no httpx client.
        self._bot = _GatewayBot(
            self._token,
            base_url=f"{self._api_url}/bot",
            request=request,
            get_updates_request=request,
        )
        self._request = request

    async def close(self) -> None:
        """Close the HTTP pool; :meth:`start` may be called again afterwards."""
        request, self._request = self._request, None
        self._bot = None
        if request is not None:
            await request.shutdown()
        _PTB_LOGGER.removeFilter(self._log_filter)

    def _require_bot(self) -> _GatewayBot:
        if self._bot is None:
            raise RuntimeError("TelegramSender.start() was not called")
        return self._bot

    async def get_me(self) -> Outcome | str:
        """The bot's username, or the outcome (usually Unauthorized/TransientError)."""
        bot = self._require_bot()
        reset_last_error()
        try:
            user = await bot.get_me()
        except Exception as exc:
            return self._classify(exc)
        return user.username or ""

    async def send(self, request: pb.SendRequest, chat_id: str) -> Outcome:
        """Send ``request`` to ``chat_id`` (which may differ from ``request.chat_id``)."""
        bot = self._require_bot()
        reset_last_error()
        try:
            message = await bot.send_message_raw(
                {
                    "chat_id": _chat_id(chat_id),
                    "text": request.text,
                    "parse_mode": _PARSE_MODES.get(request.parse_mode),
                    "message_thread_id": request.message_thread_id or None,
                    "disable_notification": request.disable_notification or None,
                    "protect_content": request.protect_content or None,
                    "allow_paid_broadcast": request.allow_paid_broadcast or None,
                    "reply_markup": _reply_markup(request),
                    "link_preview_options": _link_preview(request),
                }
            )
        except Exception as exc:
            return self._classify(exc)
        return Delivered(int(message["message_id"]))

    def _redact(self, text: str) -> str:
        return redact_url(text.replace(self._token, "<token>"))

    def _description(self, exc: TelegramError, prefix: str = "") -> str:
        raw = last_error_description()
        return self._redact(raw if raw is not None else f"{prefix}{exc.message}")

    def _classify(self, exc: Exception) -> Outcome:
        # Order matters: RetryAfter, ChatMigrated, BadRequest and TimedOut subclass
        # NetworkError in some PTB versions, so the generic classes come last.
        if isinstance(exc, RetryAfter):
            return RateLimited(_retry_after_s(exc))
        if isinstance(exc, ChatMigrated):
            return Migrated(str(exc.new_chat_id))
        if isinstance(exc, InvalidToken):
            return Unauthorized(self._description(exc))
        if isinstance(exc, Forbidden):
            return PermanentError(self._description(exc))
        if isinstance(exc, BadRequest):
            return PermanentError(self._description(exc, "Bad Request: "))
        if isinstance(exc, TimedOut):
            return TransientError(self._redact(f"Timed out: {exc.message}"))
        if isinstance(exc, TelegramError):
            return TransientError(self._description(exc))
        return TransientError(self._redact(f"unexpected {type(exc).__name__}: {exc}"))

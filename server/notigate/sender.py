"""Deliver one message through the Bot API and classify what happened.

:meth:`TelegramSender.send` never raises, whatever the Bot API or the network does; it
returns an :data:`Outcome` the worker turns into a retry, a pause, a migration or a final
state. Parameters are encoded by python-telegram-bot (``RequestData``, its types for
keyboards and link previews) and sent on :class:`~notigate.transport.AiohttpRequest`; the
answer is judged by :func:`notigate.answers.classify_answer`, on its JSON envelope rather
than on PTB's reading of the HTTP status (which fails on a 200 without ``result``).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Sequence
from typing import Any

import telegram
from telegram.error import NetworkError, TimedOut
from telegram.request import RequestData
from telegram.request._requestparameter import RequestParameter

from notigate.answers import Accepted, classify_answer, message_id_of
from notigate.outcomes import (
    AlbumPartlySent,
    Delivered,
    Migrated,
    Outcome,
    PermanentError,
    RateLimited,
    TransientError,
    Unauthorized,
    Unreachable,
)
from notigate.parse_modes import PARSE_MODE_NAMES
from notigate.telegram_media import (
    EDIT_CAPTION,
    EDIT_MARKUP,
    EDIT_MEDIA,
    EDIT_TEXT,
    Content,
    Resolved,
    album_failure,
    album_parameter,
    file_ids_of,
    is_deleted_already,
    is_not_modified,
    media_parameter,
    media_parameters,
)
from notigate.transport import AiohttpRequest, redact_url
from notigate_client import pb

__all__ = [
    "AlbumPartlySent",
    "Delivered",
    "Migrated",
    "Outcome",
    "PermanentError",
    "RateLimited",
    "TelegramSender",
    "TransientError",
    "Unauthorized",
    "Unreachable",
]

log = logging.getLogger(__name__)

_NUMERIC_CHAT = re.compile(r"-?[0-9]+")


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


class TelegramSender:
    """One bot token's connection to the Bot API (``api_url`` is the root, without ``/bot``).

    Args:
        token: the bot token; it is redacted from every description this class returns.
        api_url: e.g. ``"https://api.telegram.org"`` or a simulator's ``base_url``.
        pool_size: most simultaneous HTTP connections.
        connect_timeout_s: connecting, and waiting for a pooled connection.
        read_timeout_s: waiting for Telegram's answer.
        paid_broadcast: allow_paid_broadcast on every send (the bot pays for a higher rate).
    """

    def __init__(
        self,
        token: str,
        api_url: str,
        *,
        pool_size: int = 64,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 15.0,
        paid_broadcast: bool = False,
    ) -> None:
        self._token = token
        self._paid_broadcast = paid_broadcast
        self._api_url = api_url.rstrip("/")
        self._pool_size = pool_size
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._request: AiohttpRequest | None = None

    async def start(self) -> None:
        """Open the HTTP pool; makes no request (no getMe)."""
        if self._request is not None:
            return
        request = AiohttpRequest(
            connection_pool_size=self._pool_size,
            read_timeout=self._read_timeout_s,
            write_timeout=self._read_timeout_s,
            connect_timeout=self._connect_timeout_s,
            pool_timeout=self._connect_timeout_s,
        )
        await request.initialize()
        self._request = request

    async def close(self) -> None:
        """Close the HTTP pool; :meth:`start` may be called again afterwards."""
        request, self._request = self._request, None
        if request is not None:
            await request.shutdown()

    def _require_request(self) -> AiohttpRequest:
        if self._request is None:
            raise RuntimeError("TelegramSender.start() was not called")
        return self._request

    async def get_me(self) -> Outcome | str:
        """The bot's username, or the outcome (usually Unauthorized/TransientError)."""
        answer = await self._call("getMe", {})
        if not isinstance(answer, Accepted):
            return answer
        result = answer.result
        if isinstance(result, dict):
            username = result.get("username")
            return username if isinstance(username, str) else ""
        # ok without a User: Telegram took the token, which is all a health check asks.
        return ""

    def _delivery(self, request: pb.SendRequest, chat_id: str) -> dict[str, Any]:
        """The parameters every send method shares."""
        return {
            "chat_id": _chat_id(chat_id),
            "message_thread_id": request.message_thread_id or None,
            "disable_notification": request.disable_notification or None,
            "protect_content": request.protect_content or None,
            "allow_paid_broadcast": request.allow_paid_broadcast or self._paid_broadcast or None,
        }

    async def send(
        self,
        request: pb.SendRequest,
        chat_id: str,
        files: Resolved | None = None,
        sent_items: int = 0,
    ) -> Outcome:
        """Send ``request`` to ``chat_id`` (which may differ from ``request.chat_id``).

        ``files`` resolves each upload the request references (a file_id or the bytes);
        ``sent_items`` of an album are in the chat already and are not sent again.
        """
        if request.HasField("media"):
            return await self._send_media(request, chat_id, files or {})
        if request.HasField("media_group"):
            return await self._send_album(request, chat_id, files or {}, sent_items)
        try:
            data = {
                **self._delivery(request, chat_id),
                "text": request.text,
                "parse_mode": PARSE_MODE_NAMES.get(request.parse_mode),
                "reply_markup": _reply_markup(request),
                "link_preview_options": _link_preview(request),
            }
        except Exception as exc:
            # The same message would fail the same way on every attempt.
            return PermanentError(self._redact(f"cannot encode the message: {exc}"))
        answer = await self._call("sendMessage", data)
        if not isinstance(answer, Accepted):
            return answer
        return self._delivered(answer.result, chat_id)

    async def _send_media(self, request: pb.SendRequest, chat_id: str, files: Resolved) -> Outcome:
        media = request.media
        try:
            method, params = media_parameters(media, request.text, request.parse_mode, files)
            data = {**self._delivery(request, chat_id), "reply_markup": _reply_markup(request)}
        except Exception as exc:
            return PermanentError(self._redact(f"cannot encode the message: {exc}"))
        answer = await self._call(method, data, params)
        if not isinstance(answer, Accepted):
            return answer
        delivered = self._delivered(answer.result, chat_id)
        return _with_file_ids(delivered, [media], [answer.result], files)

    async def _send_album(
        self, request: pb.SendRequest, chat_id: str, files: Resolved, sent_items: int
    ) -> Outcome:
        items = list(request.media_group.items)[sent_items:]
        if not items:
            # Every item went out on earlier attempts (the last answer was lost).
            return Delivered(0)
        if len(items) == 1:
            # Telegram groups 2..10: the one item left goes as a message of its own.
            single = pb.SendRequest()
            single.CopyFrom(request)
            single.ClearField("media_group")
            single.media.CopyFrom(items[0].media)
            single.text = items[0].caption
            outcome = await self._send_media(single, chat_id, files)
            return _album_ids(outcome, sent_items)
        try:
            media = album_parameter(items, request.parse_mode, files)
            data = self._delivery(request, chat_id)
        except Exception as exc:
            return PermanentError(self._redact(f"cannot encode the message: {exc}"))
        answer = await self._call("sendMediaGroup", data, [media])
        if isinstance(answer, PermanentError):
            failed = album_failure(answer.description, sent_items)
            if failed is not None and failed[0] > sent_items:
                return AlbumPartlySent(*failed)
            if failed is not None:
                return failed[1]
            return answer
        if not isinstance(answer, Accepted):
            return answer
        messages = answer.result if isinstance(answer.result, list) else []
        ids = [message_id_of(m) or 0 for m in messages]
        if not ids:
            log.warning(
                "Telegram accepted an album to %s without messages in its answer (result %s); "
                "recorded as delivered with message id 0, not resent",
                chat_id,
                _shape(answer.result),
                extra={"chat_id": chat_id},
            )
        full = (*([0] * sent_items), *ids)
        delivered = Delivered(next((i for i in full if i), 0), full)
        return _with_file_ids(delivered, [i.media for i in items], messages, files)

    async def edit(
        self,
        request: pb.SendRequest,
        chat_id: str,
        method: str,
        message_id: int,
        files: Resolved | None = None,
    ) -> Outcome:
        """Apply an edit (``method``: editMessageText, …Caption, …Media, …ReplyMarkup) to
        message ``message_id``; ``request`` holds the content the message is to show."""
        try:
            data: dict[str, Any] = {
                "chat_id": _chat_id(chat_id),
                "message_id": message_id,
                "reply_markup": _reply_markup(request),
            }
            params: list[RequestParameter] = []
            if method == EDIT_TEXT:
                data["text"] = request.text
                data["parse_mode"] = PARSE_MODE_NAMES.get(request.parse_mode)
                data["link_preview_options"] = _link_preview(request)
            elif method == EDIT_CAPTION:
                data["caption"] = request.text
                data["parse_mode"] = PARSE_MODE_NAMES.get(request.parse_mode)
                if request.media.show_caption_above_media:
                    data["show_caption_above_media"] = True
            elif method == EDIT_MEDIA:
                params.append(
                    media_parameter(request.media, request.text, request.parse_mode, files or {})
                )
            elif method != EDIT_MARKUP:
                return PermanentError(f"unknown edit method {method!r}")
        except Exception as exc:
            return PermanentError(self._redact(f"cannot encode the edit: {exc}"))
        answer = await self._call(method, data, params)
        if isinstance(answer, PermanentError) and is_not_modified(answer.description):
            # The message already shows this content: the edit's purpose is met.
            return Delivered(message_id)
        if not isinstance(answer, Accepted):
            return answer
        delivered = Delivered(message_id)
        if method == EDIT_MEDIA:
            return _with_file_ids(delivered, [request.media], [answer.result], files or {})
        return delivered

    async def delete(self, chat_id: str, message_ids: Sequence[int]) -> Outcome:
        """Delete the messages (one, or an album's); ids 0 (not known) are skipped."""
        ids = [i for i in message_ids if i]
        if not ids:
            return PermanentError("Telegram did not report the message's id: nothing to delete")
        if len(ids) == 1:
            answer = await self._call(
                "deleteMessage", {"chat_id": _chat_id(chat_id), "message_id": ids[0]}
            )
        else:
            answer = await self._call(
                "deleteMessages", {"chat_id": _chat_id(chat_id), "message_ids": ids}
            )
        if isinstance(answer, PermanentError) and is_deleted_already(answer.description):
            return Delivered(ids[0])
        if not isinstance(answer, Accepted):
            return answer
        return Delivered(ids[0])

    def _delivered(self, result: Any, chat_id: str) -> Delivered:
        message_id = message_id_of(result)
        if message_id is None:
            # Telegram said ok: the message went out (or is about to). Sending it again
            # would duplicate it, and failing it would invite the caller to resend it; so
            # it counts as delivered, with message id 0 for "not known".
            log.warning(
                "Telegram accepted a message to %s without a usable message_id in its "
                "answer (result %s); recorded as delivered with message id 0, not resent",
                chat_id,
                _shape(result),
                extra={"chat_id": chat_id},
            )
            return Delivered(0)
        return Delivered(message_id)

    async def _call(
        self, method: str, data: dict[str, Any], params: Sequence[RequestParameter] = ()
    ) -> Accepted | Outcome:
        """POST ``method`` with ``data`` (None values dropped) and ``params`` (already
        encoded: files) and classify the answer."""
        url = f"{self._api_url}/bot{self._token}/{method}"
        try:
            request_data = RequestData(
                [RequestParameter.from_input(k, v) for k, v in data.items() if v is not None]
                + list(params)
            )
        except Exception as exc:
            return PermanentError(self._redact(f"cannot encode the message: {exc}"))
        try:
            status, body = await self._require_request().exchange(url, "POST", request_data)
        except Exception as exc:
            return self._classify(exc)
        answer = classify_answer(status, body)
        if isinstance(answer, PermanentError | Unreachable | TransientError | Unauthorized):
            return dataclasses.replace(answer, description=self._redact(answer.description))
        return answer

    def _redact(self, text: str) -> str:
        return redact_url(text.replace(self._token, "<token>"))

    def _classify(self, exc: Exception) -> Outcome:
        """A request that got no answer: always worth another attempt."""
        if isinstance(exc, TimedOut):
            return TransientError(self._redact(f"Timed out: {exc.message}"))
        if isinstance(exc, NetworkError):
            return TransientError(self._redact(exc.message))
        return TransientError(self._redact(f"unexpected {type(exc).__name__}: {exc}"))


def _with_file_ids(
    outcome: Delivered, media: Sequence[pb.Media], messages: Sequence[Any], files: Resolved
) -> Delivered:
    """``outcome`` with the file_ids Telegram gave the uploads that went as bytes."""
    if not any(isinstance(value, Content) for value in files.values()):
        return outcome  # nothing went as bytes: no file_id to learn
    found: dict[str, tuple[str, int, str]] = {}
    kinds = [m.kind for m in media]
    for m, file_id in zip(media, file_ids_of(messages, kinds), strict=False):
        if (
            file_id is not None
            and m.WhichOneof("source") == "upload_id"
            and isinstance(files.get(m.upload_id), Content)
        ):
            found.setdefault(m.upload_id, (m.upload_id, m.kind, file_id))
    if not found:
        return outcome
    return dataclasses.replace(outcome, file_ids=tuple(found.values()))


def _album_ids(outcome: Outcome, sent_items: int) -> Outcome:
    """The last item of an album, sent alone: its outcome in the album's terms."""
    if isinstance(outcome, Delivered):
        ids = (*([0] * sent_items), outcome.message_id)
        return dataclasses.replace(outcome, message_ids=ids)
    return outcome


def _shape(result: Any) -> str:
    if isinstance(result, dict):
        return "an object with fields " + (", ".join(sorted(map(str, result))) or "none")
    return repr(result)[:60]

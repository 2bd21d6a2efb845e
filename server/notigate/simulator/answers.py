"""Scripted odd answers for one chat: what a misbehaving Bot API or proxy sends back.

Each named shape is an answer Telegram's documentation does not promise but a gateway
meets in the wild: a success without a message id, an error envelope under HTTP 200, an
error without a description, an HTML page. ``deliver`` says whether the simulator counts
the message as sent before answering so (a success whose answer lost its message id went
out; an error envelope did not).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = ["SHAPES", "ChatAnswer", "answer_shape"]

_JSON = "application/json"


@dataclass(frozen=True, slots=True)
class ChatAnswer:
    """One scripted answer: HTTP ``status``, raw ``body`` and its content type."""

    status: int
    body: bytes
    content_type: str = _JSON
    deliver: bool = False

    def response(self) -> web.Response:
        """The answer as an aiohttp response."""
        return web.Response(status=self.status, body=self.body, content_type=self.content_type)


def _json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def _envelope_error(code: int, description: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {"ok": False, "error_code": code}
    if description is not None:
        data["description"] = description
    return data


def answer_shape(
    shape: str,
    *,
    error_code: int = 400,
    status: int | None = None,
    description: str | None = None,
) -> ChatAnswer:
    """The named odd answer (see :data:`SHAPES`).

    ``error_code`` and ``description`` fill the error shapes; ``status`` overrides the
    HTTP status (``error_in_200`` is 200 and ``no_description`` is ``error_code`` unless
    told otherwise).

    Raises:
        ValueError: unknown shape.
    """
    if shape == "no_message_id":
        body = _json({"ok": True, "result": {"date": 0, "chat": {"id": 0, "type": "private"}}})
        return ChatAnswer(status or 200, body, deliver=True)
    if shape == "result_true":
        return ChatAnswer(status or 200, _json({"ok": True, "result": True}), deliver=True)
    if shape == "truncated":
        return ChatAnswer(status or 200, b'{"ok":true,"result":{"message_id":', deliver=True)
    if shape == "error_in_200":
        return ChatAnswer(status or 200, _json(_envelope_error(error_code, description)))
    if shape == "no_description":
        return ChatAnswer(status or error_code, _json(_envelope_error(error_code, None)))
    if shape == "non_json":
        page = b"<html><body><h1>502 Bad Gateway</h1>\n<p>upstream gone</p></body></html>"
        return ChatAnswer(status or 200, page, content_type="text/html")
    raise ValueError(f"unknown answer shape {shape!r}; known: {', '.join(SHAPES)}")


SHAPES: tuple[str, ...] = (
    "no_message_id",
    "result_true",
    "truncated",
    "error_in_200",
    "no_description",
    "non_json",
)
"""Names :func:`answer_shape` knows: ``no_message_id`` (200, ok, a Message without
``message_id``; sent), ``result_true`` (200 ``{"ok":true,"result":true}``; sent),
``truncated`` (200, the body cut off after ``"ok":true``; sent), ``error_in_200`` (200
``{"ok":false,"error_code":C}``; not sent), ``no_description`` (``C {"ok":false,
"error_code":C}``; not sent), ``non_json`` (an HTML page, 200 unless told; not sent)."""

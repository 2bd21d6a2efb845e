"""Bot API wire format: request parameters in, JSON envelopes out, chat addressing.

A multipart file part becomes a :class:`FilePart`: the bytes are hashed as they stream in
and dropped, so a 50 MB upload costs no more memory than a small one.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import BodyPartReader, hdrs, web

__all__ = [
    "MAX_UPLOAD",
    "ChatRef",
    "FilePart",
    "ParamsError",
    "decode_params",
    "error_response",
    "ok_response",
    "parse_chat",
    "read_params",
]

# Parameters whose form value is the string itself; every other form value is JSON text
# (python-telegram-bot sends ints as "5", bools as "true", objects as JSON).
_STRING_PARAMS = frozenset(
    {
        "chat_id",
        "text",
        "parse_mode",
        "caption",
        "photo",
        "document",
        "video",
        "animation",
        "audio",
        "voice",
        "inline_message_id",
        "business_connection_id",
        "message_effect_id",
        "from_chat_id",
    }
)
_JSON_TYPE = "application/json"
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


# api.telegram.org refuses a file part over 50 MiB with 413 (multipart uploads only).
MAX_UPLOAD = 50 * 1024 * 1024
# Reading stops past this (an album of ten maximal files and its fields); the rest of the
# body is not drained, so the client may see the connection close instead of the 413.
_MAX_MULTIPART_BODY = 10 * MAX_UPLOAD + 1024 * 1024
_CHUNK = 1 << 16
TOO_LARGE = "Request Entity Too Large"


class ParamsError(Exception):
    """The request body could not be decoded; ``status`` is the HTTP answer's (400, 413)."""

    def __init__(self, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.status = status


class FilePart(dict[str, Any]):
    """An uploaded file as a parameter value: ``{"file_name", "size"}`` to whoever reads
    the recorded parameters, with the content's ``sha256`` (hex) and the part's
    ``mime_type`` as attributes. Made by :meth:`of` (copies made by
    :func:`dataclasses.asdict` are plain mappings without the attributes)."""

    __slots__ = ("mime_type", "sha256")
    sha256: str
    mime_type: str | None

    @classmethod
    def of(cls, file_name: str, size: int, sha256: str, mime_type: str | None) -> FilePart:
        """A file part of ``size`` bytes hashing to ``sha256``."""
        part = cls(file_name=file_name, size=size)
        part.sha256 = sha256
        part.mime_type = mime_type
        return part

    @property
    def file_name(self) -> str:
        """The part's file name."""
        return str(self["file_name"])

    @property
    def size(self) -> int:
        """The part's length in bytes."""
        return int(self["size"])


def _decode_value(name: str, value: Any) -> Any:
    if name in _STRING_PARAMS:
        # JSON bodies may carry chat_id as a number; uploads arrive as dicts.
        return str(value) if isinstance(value, int | float) else value
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def decode_params(raw: dict[str, Any]) -> dict[str, Any]:
    """Decode raw parameters the way the Bot API interprets them."""
    return {name: _decode_value(name, value) for name, value in raw.items()}


async def read_params(request: web.Request) -> dict[str, Any]:
    """Collect query-string and body parameters (body wins), decoded.

    Raises:
        ParamsError: a JSON body that is not an object, or malformed JSON.
    """
    raw: dict[str, Any] = dict(request.query) if request.query_string else {}
    if request.can_read_body:
        ctype = request.content_type
        if ctype == "application/x-www-form-urlencoded":
            body = await request.read()
            raw.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        elif ctype == _JSON_TYPE:
            body = await request.read()
            if body.strip():
                try:
                    data = json.loads(body)
                except ValueError as exc:
                    raise ParamsError("Bad Request: can't parse JSON object") from exc
                if not isinstance(data, dict):
                    raise ParamsError("Bad Request: can't parse JSON object")
                raw.update(data)
        elif ctype.startswith("multipart/"):
            raw.update(await _read_multipart(request))
    return decode_params(raw)


async def _read_multipart(request: web.Request) -> dict[str, Any]:
    """The parts of a multipart body: text fields as strings, files as :class:`FilePart`.

    Raises:
        ParamsError: 413 for a file over :data:`MAX_UPLOAD` (after reading the body, so
            the client gets the answer) or a body over the reading cap; 400 for a broken body.
    """
    fields: dict[str, Any] = {}
    total = 0
    too_large = False
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            if not part.filename:
                data = await part.read(decode=True)
                total += len(data)
                fields[part.name] = data.decode(part.get_charset("utf-8"), "replace")
            else:
                digest = hashlib.sha256()
                size = 0
                while chunk := await part.read_chunk(_CHUNK):
                    size += len(chunk)
                    if size <= MAX_UPLOAD:
                        digest.update(chunk)
                    if total + size > _MAX_MULTIPART_BODY:
                        raise ParamsError(TOO_LARGE, 413)
                total += size
                too_large = too_large or size > MAX_UPLOAD
                mime = part.headers.get(hdrs.CONTENT_TYPE)
                fields[part.name] = FilePart.of(part.filename, size, digest.hexdigest(), mime)
            if total > _MAX_MULTIPART_BODY:
                raise ParamsError(TOO_LARGE, 413)
    except (ValueError, AssertionError) as exc:
        raise ParamsError("Bad Request: can't parse multipart body") from exc
    if too_large:
        raise ParamsError(TOO_LARGE, 413)
    return fields


def ok_response(result: Any) -> web.Response:
    """``{"ok": true, "result": ...}`` with status 200."""
    return web.Response(
        body=_dumps({"ok": True, "result": result}).encode(), content_type=_JSON_TYPE
    )


def error_response(
    code: int, description: str, parameters: dict[str, Any] | None = None
) -> web.Response:
    """An error envelope whose HTTP status equals ``error_code``, like Telegram's."""
    payload: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        payload["parameters"] = parameters
    return web.Response(body=_dumps(payload).encode(), status=code, content_type=_JSON_TYPE)


_NUMERIC_ID = re.compile(r"-?[1-9][0-9]{0,15}")
_USERNAME = re.compile(r"@[A-Za-z][A-Za-z0-9_]{3,31}")


@dataclass(frozen=True, slots=True)
class ChatRef:
    """A parsed chat address: ``key`` identifies the chat for limits and message ids."""

    key: str
    id: int
    type: str
    username: str | None = None

    @property
    def private(self) -> bool:
        """Private chats get the per-second limit, every other kind the per-minute one."""
        return self.type == "private"

    def as_dict(self) -> dict[str, Any]:
        """The Chat object of a Message."""
        if self.type == "private":
            return {"id": self.id, "type": "private", "first_name": f"User {self.id}"}
        chat: dict[str, Any] = {"id": self.id, "type": self.type, "title": f"Chat {self.key}"}
        if self.username is not None:
            chat["username"] = self.username
        return chat


def parse_chat(raw: str) -> ChatRef | None:
    """Parse a chat_id parameter; ``None`` when Telegram would answer "chat not found"."""
    if _NUMERIC_ID.fullmatch(raw):
        chat_id = int(raw)
        key = str(chat_id)
        if chat_id > 0:
            return ChatRef(key, chat_id, "private")
        kind = "supergroup" if key.startswith("-100") else "group"
        return ChatRef(key, chat_id, kind)
    if _USERNAME.fullmatch(raw):
        name = raw[1:]
        # A stable channel-shaped id, so repeated sends see the same chat.
        fake_id = -1_000_000_000_000 - zlib.crc32(name.lower().encode())
        return ChatRef(raw.lower(), fake_id, "channel", name)
    return None

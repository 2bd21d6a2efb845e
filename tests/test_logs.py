"""Log formats and secret redaction (notigate.logs)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from notigate.logs import REDACTED, setup_logging

TOKEN = "123456:SECRET-bot-token"
API_TOKEN = "api-s3cret"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    root = logging.getLogger()
    level = root.level
    yield buf
    for handler in [h for h in root.handlers if getattr(h, "_notigate", False)]:
        root.removeHandler(handler)
    root.setLevel(level)


def test_json_lines_carry_extra_fields(stream: io.StringIO) -> None:
    setup_logging("info", "json", stream=stream)
    log = logging.getLogger("notigate.dispatcher")
    log.info(
        "job %s delivered in %.0f ms",
        "17",
        12.3,
        extra={"job_id": "17", "chat_id": "42", "elapsed_ms": 12},
    )
    entry = json.loads(stream.getvalue())
    assert entry["level"] == "INFO"
    assert entry["logger"] == "notigate.dispatcher"
    assert entry["msg"] == "job 17 delivered in 12 ms"
    assert (entry["job_id"], entry["chat_id"], entry["elapsed_ms"]) == ("17", "42", 12)
    assert entry["ts"].endswith("+00:00")


def test_text_lines_append_extra_fields(stream: io.StringIO) -> None:
    setup_logging("info", "text", stream=stream)
    logging.getLogger("notigate.dispatcher").warning("job 3 failed", extra={"job_id": "3"})
    line = stream.getvalue().strip()
    assert " WARNING notigate.dispatcher: job 3 failed job_id=3" in line


def test_secrets_are_redacted_everywhere(stream: io.StringIO) -> None:
    setup_logging("debug", "json", secrets=[TOKEN, API_TOKEN, ""], stream=stream)
    url = f"https://api.telegram.org/bot{TOKEN}/sendMessage"
    logging.getLogger("notigate.transport").debug("POST %s", url)
    logging.getLogger("aiohttp.client").info("auth Bearer " + API_TOKEN)
    try:
        raise RuntimeError(f"cannot reach {url}")
    except RuntimeError:
        logging.getLogger("notigate.sender").exception("send failed", extra={"chat_id": TOKEN})
    out = stream.getvalue()
    assert TOKEN not in out and API_TOKEN not in out
    entries = [json.loads(line) for line in out.splitlines()]
    assert entries[0]["msg"] == f"POST https://api.telegram.org/bot{REDACTED}/sendMessage"
    assert entries[1]["msg"] == f"auth Bearer {REDACTED}"
    assert REDACTED in entries[2]["exc"] and entries[2]["chat_id"] == REDACTED


def test_setup_twice_keeps_one_handler(stream: io.StringIO) -> None:
    setup_logging("info", "text", stream=stream)
    setup_logging("info", "json", stream=stream)
    logging.getLogger("notigate").info("once")
    assert len(stream.getvalue().splitlines()) == 1


HOSTILE = "evil\n2026-01-01 00:00:00,000 INFO    notigate: forged\r\x1b[2J\u202e\x85"


def test_text_lines_escape_what_strangers_send(stream: io.StringIO) -> None:
    setup_logging("info", "text", stream=stream)
    log = logging.getLogger("notigate.sender")
    # A Telegram description and a chat id as they might come back: one record, one line.
    log.warning("Telegram said %s", HOSTILE, extra={"chat_id": "1 outcome=delivered\n"})
    out = stream.getvalue()
    assert out.count("\n") == 1 and "\x1b" not in out and "\u202e" not in out
    assert "evil\\n2026-01-01" in out and "\\r\\x1b[2J\\u202e\\x85" in out
    # Quoted: the space cannot make the value read as a second field.
    assert out.rstrip("\n").endswith(' chat_id="1 outcome=delivered\\n"')


def test_text_tracebacks_keep_their_lines_but_cannot_forge_a_record(
    stream: io.StringIO,
) -> None:
    setup_logging("info", "text", stream=stream)
    try:
        raise ValueError(HOSTILE)
    except ValueError:
        logging.getLogger("notigate.dispatcher").exception("send failed")
    lines = stream.getvalue().splitlines()
    assert "send failed" in lines[0]
    # Only the record itself starts in column 0; the traceback is indented and inert.
    assert all(line.startswith("  ") for line in lines[1:])
    assert any("Traceback (most recent call last):" in line for line in lines[1:])
    assert "\x1b" not in stream.getvalue()


def test_json_lines_escape_what_json_would_leave_raw(stream: io.StringIO) -> None:
    setup_logging("info", "json", stream=stream)
    logging.getLogger("notigate.sender").warning("%s", HOSTILE, extra={"chat_id": "\u2028"})
    out = stream.getvalue()
    assert out.count("\n") == 1
    assert all(c.isprintable() for c in out.rstrip("\n"))
    entry = json.loads(out)
    assert entry["msg"] == HOSTILE and entry["chat_id"] == "\u2028"  # the same text, decoded

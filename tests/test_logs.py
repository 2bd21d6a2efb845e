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
    log = logging.getLogger("notigate.worker")
    log.info(
        "job %s delivered in %.0f ms",
        "17",
        12.3,
        extra={"job_id": "17", "chat_id": "42", "elapsed_ms": 12},
    )
    entry = json.loads(stream.getvalue())
    assert entry["level"] == "INFO"
    assert entry["logger"] == "notigate.worker"
    assert entry["msg"] == "job 17 delivered in 12 ms"
    assert (entry["job_id"], entry["chat_id"], entry["elapsed_ms"]) == ("17", "42", 12)
    assert entry["ts"].endswith("+00:00")


def test_text_lines_append_extra_fields(stream: io.StringIO) -> None:
    setup_logging("info", "text", stream=stream)
    logging.getLogger("notigate.worker").warning("job 3 failed", extra={"job_id": "3"})
    line = stream.getvalue().strip()
    assert " WARNING notigate.worker: job 3 failed job_id=3" in line


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

"""Request building shared by the sync and async clients (no server involved)."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from notigate_client import pb
from notigate_client._common import (
    RetryPolicy,
    batch_request,
    build_send_request,
    call_metadata,
    channel_credentials,
    with_idempotency_key,
)
from notigate_client.errors import InvalidArgumentError, UnavailableError


def test_build_send_request() -> None:
    markup = pb.InlineKeyboardMarkup(
        rows=[pb.InlineKeyboardRow(buttons=[pb.InlineKeyboardButton(text="a", url="https://x")])]
    )
    req = build_send_request(
        -1001234567890,
        "hi",
        parse_mode="MarkdownV2",
        priority=5,
        delay=1.5,
        max_attempts=3,
        message_thread_id=7,
        reply_markup=markup,
        allow_paid_broadcast=True,
    )
    assert req.chat_id == "-1001234567890"
    assert req.parse_mode == pb.PARSE_MODE_MARKDOWN_V2
    assert (req.delay.seconds, req.delay.nanos) == (1, 500_000_000)
    assert req.reply_markup == markup and req.allow_paid_broadcast
    assert req.idempotency_key == ""  # filled in per call, not at build time
    assert not build_send_request("1", "x").HasField("delay")
    td = build_send_request("1", "x", delay=timedelta(minutes=2)).delay
    assert (td.seconds, td.nanos) == (120, 0)
    assert build_send_request("1", "x", parse_mode=pb.PARSE_MODE_HTML).parse_mode == 1
    with pytest.raises(ValueError, match="parse_mode"):
        build_send_request("1", "x", parse_mode="markdown")  # type: ignore[arg-type]


def test_idempotency_key_added_without_mutating_caller() -> None:
    req = pb.SendRequest(chat_id="1", text="x")
    keyed = with_idempotency_key(req)
    assert req.idempotency_key == "" and len(keyed.idempotency_key) == 36
    assert with_idempotency_key(keyed) is keyed
    own = pb.SendRequest(chat_id="1", text="x", idempotency_key="mine")
    batch = batch_request([req, own, req])
    keys = [m.idempotency_key for m in batch.messages]
    assert keys[1] == "mine" and len(set(keys)) == 3


def test_metadata_and_credentials() -> None:
    assert call_metadata(None) == ()
    assert call_metadata("abc") == (("authorization", "Bearer abc"),)
    assert channel_credentials(False, None) is None
    assert isinstance(channel_credentials(True, None), grpc.ChannelCredentials)
    creds = grpc.ssl_channel_credentials()
    assert channel_credentials(creds, None) is creds
    with pytest.raises(ValueError):
        channel_credentials(creds, b"pem")


def test_retry_policy() -> None:
    policy = RetryPolicy(retries=5, initial_backoff_s=0.1, max_backoff_s=0.3)
    assert list(policy.delays()) == pytest.approx([0.1, 0.2, 0.3, 0.3, 0.3])
    assert list(RetryPolicy(retries=0).delays()) == []
    unavailable = UnavailableError("down", retry_after_s=0.25)
    wait = policy.wait_s(0.1, unavailable)
    assert wait is not None and 0.25 <= wait <= 0.3
    assert policy.wait_s(0.1, InvalidArgumentError("bad")) is None

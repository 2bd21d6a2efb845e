"""The ListJobs page token: round trips, and refusal of every token we never issued."""

from __future__ import annotations

import base64
import math
import string
import struct

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from notigate.pagination import PageToken, decode_page_token, encode_page_token
from notigate_client import pb


def test_page_token_round_trip() -> None:
    for state in pb.JobState.values():
        for score, job_id in ((0.0, ""), (1.0, "1"), (1_795_847_087_308.0, "18446744073709551615")):
            token = encode_page_token(PageToken(state, score, job_id))
            assert set(token) <= set(string.ascii_letters + string.digits + "-_")
            assert decode_page_token(token) == PageToken(state, score, job_id)


@pytest.mark.parametrize(
    "token",
    [
        "x",
        "abc",
        "!!!!",
        "AAAAAAAAAAAAAA",  # version 0
        "AgcAAAAAAAAAAA",  # state 7 does not exist
        "AQEAAAAAAAAAAA",  # version 1 (offset tokens, no longer issued)
        "A" * 100,
    ],
)
def test_bad_page_tokens(token: str) -> None:
    assert decode_page_token(token) is None


def test_page_token_refuses_what_encode_never_makes() -> None:
    def raw_token(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head = struct.pack(">BBd", 2, 1, 5.0)
    assert decode_page_token(raw_token(head + b"12")) == PageToken(1, 5.0, "12")
    assert decode_page_token(raw_token(head + b"012")) is None  # not a job id
    assert decode_page_token(raw_token(head + b"\xff")) is None
    assert decode_page_token(raw_token(struct.pack(">BBd", 2, 1, math.nan))) is None
    token = encode_page_token(PageToken(1, 5.0, "12"))
    assert decode_page_token(token + "=") is None
    assert decode_page_token(token + "A") is None


@given(st.text(max_size=100))
@example(encode_page_token(PageToken(1, 5.0, "12")))
def test_page_token_decoder_never_raises(token: str) -> None:
    decoded = decode_page_token(token)
    if decoded is not None:
        assert encode_page_token(decoded) == token

"""The dashboard's server side over real HTTP against a real gateway: sessions, logins,
CSRF, read-only and bound tokens, the views' answers and the live stream (the page itself
is driven in a browser by tests/browser)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from yarl import URL

from notigate.app import Gateway
from notigate.config import BotSettings, ConfigError, Settings, TokenBinding, from_env
from notigate.dashboard.sessions import COOKIE
from notigate.embedded import EmbeddedValkey
from notigate.errors import StartupRefused
from notigate.security import token_sha256
from notigate.simulator import BotApiSimulator
from notigate_client import pb
from tests.conftest import (
    bot_token,
    bots_simulator,
    gateway_settings,
    running_gateway,
    wait_state,
)

ADMIN, LOOK = "admin-token-for-tests", "read-only-token-for-tests"
AUTH = (("authorization", f"Bearer {ADMIN}"),)


class Browser:
    """An HTTP client that keeps cookies as a browser does (for 127.0.0.1 too)."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.http.get(self.base + path, **kw) as r:
            return r.status, await r.json()

    async def post(self, path: str, body: Any = None, *, csrf: bool = True, **kw: Any) -> Any:
        headers = dict(kw.pop("headers", {}))
        if csrf and self.csrf:
            headers["X-CSRF-Token"] = self.csrf
        async with self.http.post(self.base + path, json=body, headers=headers, **kw) as r:
            return r.status, (await r.json() if r.content_type == "application/json" else None)

    async def login(self, token: str) -> dict[str, Any]:
        status, body = await self.post("/api/login", {"token": token}, csrf=False)
        assert status == 200, body
        self.csrf = body["csrf_token"]
        return dict(body)


@asynccontextmanager
async def browser(gw: Gateway) -> AsyncIterator[Browser]:
    b = Browser(gw.dashboard_port)
    try:
        yield b
    finally:
        await b.http.close()


def settings(valkey: EmbeddedValkey, sim: BotApiSimulator, **kw: Any) -> Settings:
    return gateway_settings(valkey, sim, dashboard_listen="127.0.0.1:0", **kw)


def reason(body: Any) -> str:
    return str(body["error"].get("reason", ""))


async def test_without_tokens_every_visitor_is_admin_but_actions_need_the_csrf_token(
    valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    async with running_gateway(settings(valkey, simulator)) as (gw, stub), browser(gw) as b:
        status, session = await b.get("/api/session")
        assert status == 200
        assert (session["role"], session["auth"], session["bots"]) == ("admin", False, ["default"])
        b.csrf = session["csrf_token"]
        sent = await stub.Send(pb.SendRequest(chat_id="42", text="hello"))
        await wait_state(stub, sent.job_id, pb.JOB_STATE_COMPLETED)

        status, body = await b.get("/api/overview")
        stats = await stub.GetStats(pb.GetStatsRequest())
        assert status == 200
        assert int(body["stats"]["completed"]) == stats.completed >= 1
        assert int(body["stats"]["total_sent"]) == stats.total_sent
        assert body["stats"]["bots"][0]["stats"]["limiter"]["rate"] == stats.global_rate
        status, body = await b.get("/api/throughput")
        assert (status, body["interval"]) == (200, "10s")

        status, body = await b.post("/api/bulk", {"action": "retry"}, csrf=False)
        assert (status, reason(body)) == (403, "CSRF")
        status, body = await b.post("/api/bulk", {"action": "retry", "validate_only": True})
        assert (status, body["count"]) == (200, "0")
        # A page of another site may not drive a loopback dashboard (DNS rebinding).
        status, body = await b.get("/api/overview", headers={"Host": "evil.example:80"})
        assert (status, reason(body)) == (421, "HOST")


async def test_login_read_only_tokens_and_forged_sessions(
    valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    s = settings(valkey, simulator, api_tokens=(ADMIN,), readonly_tokens=(LOOK,))
    async with running_gateway(s) as (gw, stub), browser(gw) as b:
        status, body = await b.get("/api/overview")
        assert (status, reason(body)) == (401, "LOGIN")
        status, body = await b.get("/api/session")
        assert status == 401
        status, body = await b.post("/api/login", {"token": "wrong"}, csrf=False)
        assert (status, reason(body)) == (401, "AUTH_INVALID")
        assert not [c for c in b.http.cookie_jar if c.key == COOKIE]

        session = await b.login(LOOK)
        assert session["role"] == "read_only"
        cookie = next(c for c in b.http.cookie_jar if c.key == COOKIE)
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
        assert LOOK not in cookie.value
        status, _ = await b.get("/api/overview")
        assert status == 200
        sent = await stub.Send(pb.SendRequest(chat_id="42", text="hello"), metadata=AUTH)
        status, body = await b.post(f"/api/jobs/{sent.job_id}/cancel")
        assert (status, reason(body)) == (403, "READ_ONLY")
        status, body = await b.post("/api/bulk", {"action": "cancel"})
        assert (status, reason(body)) == (403, "READ_ONLY")

        admin = await b.login(ADMIN)
        assert admin["role"] == "admin"
        status, body = await b.post(
            "/api/bulk", {"action": "retry"}, headers={"Origin": "http://evil.example"}
        )
        assert (status, reason(body)) == (403, "ORIGIN")

        # A cookie whose signature does not match is no session.
        value = next(c for c in b.http.cookie_jar if c.key == COOKIE).value
        forged = value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB")
        b.http.cookie_jar.clear()
        b.http.cookie_jar.update_cookies({COOKIE: forged}, URL(b.base))
        status, body = await b.get("/api/overview")
        assert (status, reason(body)) == (401, "LOGIN")

        await b.login(ADMIN)
        status, _ = await b.post("/api/logout")
        assert status == 204
        status, _ = await b.get("/api/overview")
        assert status == 401


async def test_a_session_opened_on_one_gateway_is_good_on_another(
    valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    s = settings(valkey, simulator, api_tokens=(ADMIN,))
    async with (
        running_gateway(s) as (one, _),
        running_gateway(s) as (other, _),
        browser(one) as b,
    ):
        await b.login(ADMIN)
        value = next(c for c in b.http.cookie_jar if c.key == COOKIE).value
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{other.dashboard_port}/api/session"
            async with http.get(url, cookies={COOKIE: value}) as r:
                assert r.status == 200
                assert (await r.json())["csrf_token"] == b.csrf
    # A gateway whose configuration no longer has the token ends the session.
    async with (
        running_gateway(settings(valkey, simulator, api_tokens=("another",))) as (
            gw,
            _,
        ),
        aiohttp.ClientSession() as http,
    ):
        url = f"http://127.0.0.1:{gw.dashboard_port}/api/session"
        async with http.get(url, cookies={COOKIE: value}) as r:
            assert r.status == 401


async def test_actions_change_jobs_through_the_api(
    valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    async with running_gateway(settings(valkey, simulator)) as (gw, stub), browser(gw) as b:
        await b.get("/api/session")
        b.csrf = (await b.get("/api/session"))[1]["csrf_token"]
        simulator.block_chat("77")
        failed = await stub.Send(pb.SendRequest(chat_id="77", text="to a blocked chat"))
        await wait_state(stub, failed.job_id, pb.JOB_STATE_FAILED)

        status, body = await b.get("/api/jobs?state=failed")
        assert status == 200 and failed.job_id in [j["job_id"] for j in body["jobs"]]
        status, body = await b.get("/api/suppressed")
        assert [c["chat_id"] for c in body["chats"]] == ["77"]

        simulator.unblock_chat("77")
        status, body = await b.post("/api/suppressed/unsuppress", {"chat_id": "77"})
        assert (status, body["chat"]["chat_id"]) == (200, "77")
        status, body = await b.post(f"/api/jobs/{failed.job_id}/retry")
        assert status == 200 and body["job"]["job_id"] == failed.job_id
        await wait_state(stub, failed.job_id, pb.JOB_STATE_COMPLETED)

        # Bad input gets the API's own error, with its details.
        status, body = await b.post("/api/jobs/not-an-id/retry")
        assert (status, body["error"]["code"]) == (400, "INVALID_ARGUMENT")
        status, body = await b.post(f"/api/jobs/{failed.job_id}/cancel")
        assert (status, body["error"]["code"]) == (409, "FAILED_PRECONDITION")
        status, body = await b.get("/api/jobs?state=nonsense")
        assert (status, body["error"]["code"]) == (400, "INVALID_ARGUMENT")
        status, body = await b.post("/api/bulk", {"action": "explode"})
        assert status == 400
        status, body = await b.get("/api/simulator")
        assert status == 404  # not a sandbox gateway


async def test_search_by_chat_text_key_and_id_and_a_jobs_timeline(
    valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    async with running_gateway(settings(valkey, simulator)) as (gw, stub), browser(gw) as b:
        await b.get("/api/session")
        keyed = await stub.Send(
            pb.SendRequest(chat_id="9090", text="Your Refund is on its way", idempotency_key="k-7")
        )
        other = await stub.Send(pb.SendRequest(chat_id="9091", text="Order shipped"))
        await wait_state(stub, other.job_id, pb.JOB_STATE_COMPLETED)
        await wait_state(stub, keyed.job_id, pb.JOB_STATE_COMPLETED)

        status, body = await b.get("/api/search?q=9090")
        assert (status, body["kind"]) == (200, "chat")
        assert [j["job_id"] for j in body["results"]["jobs"]] == [keyed.job_id]
        status, body = await b.get("/api/search?q=refund")
        assert (body["kind"], body["text_skipped"]) == ("text", False)
        assert [j["job_id"] for j in body["results"]["jobs"]] == [keyed.job_id]
        # A key names its job: no text scan, unless asked for.
        status, body = await b.get("/api/search?q=k-7")
        assert body["by_key"]["job_id"] == keyed.job_id
        assert body["text_skipped"] and body["results"]["jobs"] == []
        status, body = await b.get("/api/search?q=k-7&kind=text")
        assert not body["text_skipped"]
        status, body = await b.get(f"/api/search?q={other.job_id}")
        assert body["job"]["job_id"] == other.job_id
        status, body = await b.get("/api/search?q=%20")
        assert status == 400

        status, body = await b.get(f"/api/jobs/{keyed.job_id}")
        states = [e["state"] for e in body["events"]]
        assert states[0] == "JOB_STATE_WAITING" and states[-1] == "JOB_STATE_COMPLETED"
        assert body["events_trimmed"] is False


async def test_a_token_bound_to_some_bots_sees_only_those(valkey: EmbeddedValkey) -> None:
    names = ["shop", "alerts"]
    async with bots_simulator(*names) as sim:
        bots = tuple(BotSettings(n, bot_token(n)) for n in names)
        binding = TokenBinding(sha256=token_sha256("shop-only"), bots=frozenset({"shop"}))
        s = settings(
            valkey, sim, bot_token=None, bots=bots, token_bindings=(binding,), api_tokens=(ADMIN,)
        )
        async with running_gateway(s) as (gw, stub), browser(gw) as b:
            await stub.Send(pb.SendRequest(bot="alerts", chat_id="1", text="x"), metadata=AUTH)
            session = await b.login("shop-only")
            assert session["bots"] == ["shop"]
            status, body = await b.get("/api/overview")
            assert status == 200
            assert [s["bot"] for s in body["stats"]["bots"]] == ["shop"]
            status, body = await b.get("/api/jobs?bot=alerts")
            assert (status, reason(body)) == (403, "BOT_NOT_ALLOWED")
            status, body = await b.get("/api/jobs/alerts:1")
            assert status == 403


async def _next_event(response: aiohttp.ClientResponse) -> dict[str, Any]:
    kind = ""
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line[len("event: ") :]
        elif line.startswith("data: ") and kind == "job":
            return dict(json.loads(line[len("data: ") :]))
    raise AssertionError("the stream ended")


async def test_live_stream_relays_job_events(
    valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    async with running_gateway(settings(valkey, simulator)) as (gw, stub), browser(gw) as b:
        await b.get("/api/session")
        async with b.http.get(b.base + "/api/events") as stream:
            assert stream.status == 200
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            sent = await stub.Send(pb.SendRequest(chat_id="42", text="live"))
            seen: list[str] = []
            while "JOB_STATE_COMPLETED" not in seen:
                event = await asyncio.wait_for(_next_event(stream), 20)
                if event["job_id"] == sent.job_id:
                    seen.append(event["state"])
            assert seen[0] == "JOB_STATE_WAITING"


async def test_page_is_served_with_a_strict_content_security_policy(
    valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    async with (
        running_gateway(settings(valkey, simulator)) as (gw, _),
        browser(gw) as b,
        b.http.get(b.base + "/") as r,
    ):
        if True:
            csp = r.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert r.headers["X-Frame-Options"] == "DENY"


def test_the_dashboard_is_on_in_sandbox_mode_and_off_otherwise() -> None:
    assert from_env({}).dashboard_address() is None
    assert from_env({}, sandbox=True).dashboard_address() == "127.0.0.1:8082"
    assert from_env({"NOTIGATE_DASHBOARD_LISTEN": "off"}, sandbox=True).dashboard_address() is None
    env = {"NOTIGATE_DASHBOARD_LISTEN": "127.0.0.1:9999"}
    assert from_env(env).dashboard_address() == "127.0.0.1:9999"


def test_beyond_loopback_the_dashboard_needs_a_token_or_an_explicit_open() -> None:
    env = {"NOTIGATE_DASHBOARD_LISTEN": "0.0.0.0:8082"}
    with pytest.raises(ConfigError, match="beyond loopback"):
        from_env(env)
    assert from_env({**env, "NOTIGATE_API_TOKEN": "t"}).dashboard_address() == "0.0.0.0:8082"
    assert from_env({**env, "NOTIGATE_DASHBOARD_OPEN": "1"}).dashboard_address() == "0.0.0.0:8082"
    with pytest.raises(ConfigError, match="NOTIGATE_DASHBOARD_LISTEN must be host:port"):
        from_env({"NOTIGATE_DASHBOARD_LISTEN": "nonsense"})
    with pytest.raises(ConfigError, match="either read-only or not"):
        from_env({"NOTIGATE_API_TOKEN": "same", "NOTIGATE_READONLY_TOKEN": "same"})


async def test_a_taken_dashboard_port_refuses_startup(
    valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    async with running_gateway(settings(valkey, simulator)) as (gw, _):
        taken = gateway_settings(
            valkey, simulator, dashboard_listen=f"127.0.0.1:{gw.dashboard_port}"
        )
        with pytest.raises(StartupRefused):
            async with Gateway(taken):
                pass

"""Fixtures for the dashboard in a real browser: Debian's chromium driven by Playwright's
async API (the gateway runs on the test's event loop, which the sync API would block),
a gateway with its dashboard on port 0, the Bot API simulator and Valkey of
tests/conftest.py.

Playwright never downloads a browser here: it launches /usr/bin/chromium
(``make test-browser`` installs it where it is missing).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from redis.asyncio import Redis

from notigate.app import Gateway
from notigate.embedded import EmbeddedValkey
from notigate.simulator import BotApiSimulator
from notigate_client import AsyncNotificationClient
from tests.conftest import gateway_settings

try:
    from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect
except ImportError:  # `make test` does not install the browser extra: nothing to collect.
    collect_ignore_glob = ["test_*.py"]

CHROMIUM = os.environ.get("NOTIGATE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ADMIN_TOKEN = "dashboard-admin-token"
READONLY_TOKEN = "dashboard-readonly-token"
# How long an expectation on the page may take before the test fails: a hang guard for a
# loaded machine, not a speed requirement.
EXPECT_TIMEOUT_MS = 20_000

if "expect" in globals():
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)


@dataclass
class Dashboard:
    """A running gateway with its dashboard, and a client with the admin token."""

    gateway: Gateway
    client: AsyncNotificationClient
    sim: BotApiSimulator
    url: str


@dataclass
class PageProblems:
    """What the page reported that a working page never does: script errors and
    Content-Security-Policy violations."""

    messages: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("pageerror", lambda exc: self.messages.append(f"page error: {exc}"))
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        # A 401 or 403 the test asks for is logged as a failed load: not a problem.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.messages.append(f"console: {message.text}")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: make test-browser installs it")
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        await b.close()


def dashboard_port(gw: Gateway) -> int:
    return int(gw.dashboard_port)


@pytest.fixture
async def dashboard(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> AsyncIterator[Dashboard]:
    settings = gateway_settings(
        valkey,
        simulator,
        api_tokens=(ADMIN_TOKEN,),
        readonly_tokens=(READONLY_TOKEN,),
        dashboard_listen="127.0.0.1:0",
    )
    async with Gateway(settings) as gw:
        client = AsyncNotificationClient(f"127.0.0.1:{gw.port}", token=ADMIN_TOKEN, retries=0)
        try:
            yield Dashboard(gw, client, simulator, f"http://127.0.0.1:{dashboard_port(gw)}")
        finally:
            await client.close()


@pytest.fixture
async def problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
async def page(browser: Browser, problems: PageProblems) -> AsyncIterator[Page]:
    """A fresh browser context (no cookies) and page; fails the test on a script error or
    a CSP violation."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    pg = await context.new_page()
    problems.watch(pg)
    yield pg
    await context.close()
    assert problems.messages == []


async def login(page: Page, dash: Dashboard, token: str = ADMIN_TOKEN, route: str = "") -> None:
    """Open the dashboard (at ``route``, e.g. "#/jobs/failed") and sign in with ``token``
    through the login form."""
    await page.goto(f"{dash.url}/{route}")
    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#main-nav")).to_be_visible()

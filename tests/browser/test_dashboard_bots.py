"""The dashboard of a gateway with several bots: the sum over all bots, and each bot's own."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect
from redis.asyncio import Redis

from notigate.app import Gateway
from notigate.embedded import EmbeddedValkey
from notigate_client import AsyncNotificationClient, pb
from tests.browser.helpers import wait_final
from tests.conftest import bots_settings, bots_simulator

pytestmark = pytest.mark.browser

BOTS = ("alerts", "news")


async def test_bot_picker_shows_the_sum_and_each_bot(
    redis: Redis, valkey: EmbeddedValkey, page: Page
) -> None:
    async with bots_simulator(*BOTS) as sim:
        # No API token: nobody signs in, and the dashboard stays on loopback.
        settings = bots_settings(valkey, sim, BOTS, dashboard_listen="127.0.0.1:0")
        async with Gateway(settings) as gw:
            client = AsyncNotificationClient(f"127.0.0.1:{gw.port}", retries=0)
            try:
                ids = []
                for bot, count in (("alerts", 3), ("news", 1)):
                    for n in range(count):
                        sent = await client.send("8001", f"{bot} {n}", bot=bot)
                        assert isinstance(sent, pb.SendResponse)
                        ids.append(sent.job_id)
                await wait_final(client, ids)
                total = await client.stats()
                news = await client.stats(bot="news")
                assert (total.completed, news.completed) == (4, 1)

                await page.goto(f"http://127.0.0.1:{gw.dashboard_port}/")
                await expect(page.locator("h1")).to_have_text("Overview: all bots")
                await expect(page.locator('[data-count="completed"]')).to_have_text("4")
                # Each bot's row in the sum, and no sign-in or sign-out without tokens.
                for bot in BOTS:
                    await expect(page.locator(f'tr[data-key="{bot}"]')).to_be_visible()
                await expect(page.get_by_role("button", name="Sign out")).to_be_hidden()

                await page.get_by_label("Bot", exact=True).select_option("news")
                await expect(page.locator("h1")).to_have_text("Overview: bot news")
                await expect(page.locator('[data-count="completed"]')).to_have_text(
                    str(news.completed)
                )
                await expect(page.locator('[data-count="rate"]')).to_be_visible()
                # The bot stays picked from view to view.
                await page.locator("#main-nav").get_by_role("link", name="Jobs").click()
                await page.get_by_role("link", name="completed").click()
                await expect(page.locator("tbody tr")).to_have_count(1)
                await expect(page.locator("tbody")).to_contain_text("news 0")
            finally:
                await client.close()

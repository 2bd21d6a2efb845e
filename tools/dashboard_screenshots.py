"""Screenshots of the dashboard for the README (run by hand: not part of the tests).

Starts a sandbox gateway (embedded Valkey, the built-in Bot API simulator, the dashboard)
on free loopback ports in a temporary data dir, sends some traffic (delivered, failed,
suppressed, a 429, some held for later), and saves docs/img/dashboard-*.png with
Debian's chromium driven by Playwright (pip install -e '.[browser]').

    .venv/bin/python tools/dashboard_screenshots.py [--out docs/img] [--minutes 3]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import Page, async_playwright

from notigate.app import Gateway
from notigate.config import Settings
from notigate_client import AsyncNotificationClient, NotFoundError, pb

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
FINAL = {pb.JOB_STATE_COMPLETED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED}
TEXTS = [
    "Your order #{n} has shipped",
    "Reminder: standup in 10 minutes",
    "Build {n} passed on main",
    "Invoice {n} is due tomorrow",
    "New login to your account from Berlin",
]


async def sim_control(sim_url: str, path: str, body: dict[str, Any]) -> None:
    """POST to the sandbox simulator's /_sim control endpoint (on loopback)."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sim_url}/_sim/{path}", json=body) as reply,
    ):
        reply.raise_for_status()


async def settle(client: AsyncNotificationClient, job_ids: list[str]) -> None:
    """Wait until every job is final (or gone: sandbox retention keeps 100 completed)."""

    async def final(job_id: str) -> bool:
        try:
            return (await client.get_job(job_id)).state in FINAL
        except NotFoundError:
            return True

    for _ in range(600):
        if all([await final(j) for j in job_ids]):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("traffic did not settle")


def keyboard(text: str, url: str) -> pb.InlineKeyboardMarkup:
    button = pb.InlineKeyboardButton(text=text, url=url)
    return pb.InlineKeyboardMarkup(rows=[pb.InlineKeyboardRow(buttons=[button])])


async def traffic(gw: Gateway, client: AsyncNotificationClient, minutes: float) -> str:
    """Sends the mix the screenshots show for ``minutes`` (the chart draws the last hour:
    more minutes, more of it drawn); returns a failed job's id."""
    sim = gw.sandbox_url
    await sim_control(sim, "block", {"chat_id": "500100"})  # 403: the chat gets suppressed
    await sim_control(
        sim,
        "block",
        {"chat_id": "500200", "status": 400, "description": "Bad Request: message is too long"},
    )
    failed: list[str] = []
    for n in range(3):
        sent = await client.send("500100", f"Weekly digest #{n + 1}")
        assert isinstance(sent, pb.SendResponse)
        failed.append(sent.job_id)
    for n in range(4):
        sent = await client.send(
            "500200",
            f"Spring promo, part {n + 1}: " + "lorem ipsum " * 20,
            idempotency_key=f"promo-{n + 1}",
            reply_markup=keyboard("See the offer", "https://example.org/promo"),
        )
        assert isinstance(sent, pb.SendResponse)
        failed.append(sent.job_id)
    ids: list[str] = []
    loop = asyncio.get_running_loop()
    began = loop.time()
    second = 0
    while (elapsed := loop.time() - began) < minutes * 60:
        # A rate that rises and falls, and now and then a chat that Telegram answers 429.
        count = 2 + round(5 * (1 + math.sin(elapsed / 25)))
        for n in range(count):
            text = TEXTS[(second + n) % len(TEXTS)].format(n=1000 + len(ids))
            # Spread over chats: Telegram lets a bot send one message a second to a chat.
            chat = str(100200 + len(ids) % 24)
            sent = await client.send(chat, text, idempotency_key=f"k-{len(ids)}")
            assert isinstance(sent, pb.SendResponse)
            ids.append(sent.job_id)
        if second % 40 == 20:
            await sim_control(sim, "rate_limit_chat", {"chat_id": "500300", "retry_after": 1})
            for n in range(3):
                sent = await client.send("500300", f"Your verification code is {424242 + n}")
                assert isinstance(sent, pb.SendResponse)
                ids.append(sent.job_id)
        if second % 40 == 24:
            await sim_control(sim, "unblock", {"chat_id": "500300"})
        second += 1
        await asyncio.sleep(1.0)
    await sim_control(sim, "unblock", {"chat_id": "500300"})
    await settle(client, ids + failed)
    for n in range(3):
        await client.send("100300", f"Tomorrow's agenda, part {n + 1}", delay=3600)
    return failed[-1]


async def shoot(page: Page, url: str, path: Path, ready: str, full_page: bool = True) -> None:
    await page.goto(url)
    await page.locator(ready).first.wait_for()
    await page.wait_for_timeout(400)  # the last paint of the live refresh
    shot = await page.screenshot(path=str(path), full_page=full_page)
    print(f"wrote {path} ({len(shot) // 1024} KB)")


async def main(out: Path, minutes: float) -> None:
    with tempfile.TemporaryDirectory() as data:
        settings = Settings(
            sandbox=True,
            data_dir=Path(data),
            listen="127.0.0.1:0",
            sandbox_listen="127.0.0.1:0",
            dashboard_listen="127.0.0.1:0",
        )
        async with Gateway(settings) as gw:
            client = AsyncNotificationClient(f"127.0.0.1:{gw.port}", retries=0)
            failed = await traffic(gw, client, minutes)
            base = f"http://127.0.0.1:{gw.dashboard_port}"
            async with async_playwright() as p:
                browser = await p.chromium.launch(
                    executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
                )
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                await shoot(page, f"{base}/#/", out / "dashboard-overview.png", "[data-chart]")
                await shoot(page, f"{base}/#/jobs/failed", out / "dashboard-jobs.png", "tbody tr")
                await shoot(
                    page, f"{base}/#/job/{failed}", out / "dashboard-job.png", "[data-field]"
                )
                # The first screenful: a full page of results is over 300 KB.
                await shoot(
                    page,
                    f"{base}/#/search?q=order",
                    out / "dashboard-search.png",
                    "tbody tr",
                    full_page=False,
                )
                mobile = await browser.new_page(
                    viewport={"width": 375, "height": 812}, device_scale_factor=2
                )
                await shoot(
                    mobile,
                    f"{base}/#/",
                    out / "dashboard-mobile.png",
                    "[data-chart]",
                    full_page=False,
                )
                await browser.close()
            await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--minutes", type=float, default=3.0, help="of traffic (default 3)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(args.out, args.minutes))

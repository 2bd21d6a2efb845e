"""Screenshots of the dashboard for the README (run by hand: not part of the tests).

Starts a sandbox gateway (embedded Valkey, the built-in Bot API simulator, the dashboard)
on free loopback ports in a temporary data dir, sends some traffic (delivered, failed,
suppressed, a 429, some held for later), and saves docs/img/dashboard-*.png with
Debian's chromium driven by Playwright (pip install -e '.[browser]').

    .venv/bin/python tools/dashboard_screenshots.py [--out docs/img]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import Page, async_playwright

from notigate.app import Gateway
from notigate.config import Settings
from notigate_client import AsyncNotificationClient, pb

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
    for _ in range(600):
        jobs = [await client.get_job(j) for j in job_ids]
        if all(j.state in FINAL for j in jobs):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("traffic did not settle")


async def traffic(gw: Gateway, client: AsyncNotificationClient) -> str:
    """Sends the mix the screenshots show; returns a failed job's id."""
    sim = gw.sandbox_url
    await sim_control(sim, "block", {"chat_id": "500100"})  # 403: the chat gets suppressed
    await sim_control(
        sim,
        "block",
        {
            "chat_id": "500200",
            "status": 400,
            "description": "Bad Request: message is too long",
        },
    )
    await sim_control(sim, "rate_limit_chat", {"chat_id": "500300", "retry_after": 1})
    ids: list[str] = []
    for round_ in range(6):
        for n in range(12):
            text = TEXTS[n % len(TEXTS)].format(n=1000 + round_ * 12 + n)
            sent = await client.send(str(100200 + n % 4), text, idempotency_key=f"k-{round_}-{n}")
            assert isinstance(sent, pb.SendResponse)
            ids.append(sent.job_id)
        await asyncio.sleep(1.0)
    failed: list[str] = []
    for n in range(3):
        sent = await client.send("500100", f"Weekly digest #{n}")
        assert isinstance(sent, pb.SendResponse)
        failed.append(sent.job_id)
    for n in range(4):
        sent = await client.send("500200", f"Spring promo, part {n + 1}: " + "lorem ipsum " * 20)
        assert isinstance(sent, pb.SendResponse)
        failed.append(sent.job_id)
    limited = await client.send("500300", "Your verification code is 424242")
    assert isinstance(limited, pb.SendResponse)
    await asyncio.sleep(1.5)
    await sim_control(sim, "unblock", {"chat_id": "500300"})
    await settle(client, ids + failed + [limited.job_id])
    for n in range(3):
        await client.send("100300", f"Tomorrow's agenda, part {n + 1}", delay=3600)
    return failed[-1]


async def shoot(page: Page, url: str, path: Path, ready: str, full_page: bool = True) -> None:
    await page.goto(url)
    await page.locator(ready).first.wait_for()
    await page.wait_for_timeout(400)  # the last paint of the live refresh
    shot = await page.screenshot(path=str(path), full_page=full_page)
    print(f"wrote {path} ({len(shot) // 1024} KB)")


async def main(out: Path) -> None:
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
            failed = await traffic(gw, client)
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
                await shoot(
                    page, f"{base}/#/search?q=order", out / "dashboard-search.png", "tbody tr"
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
    out_dir = parser.parse_args().out
    out_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(out_dir))

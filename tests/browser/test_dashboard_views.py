"""The dashboard's views against a real gateway: what they show matches the gRPC API, and
their actions change exactly what they say."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from notigate_client import pb
from tests.browser.conftest import Dashboard, login
from tests.browser.helpers import PERMANENT, send, wait_final, wait_states

pytestmark = pytest.mark.browser

IN_DIALOG = "document.getElementById('confirm-dialog').contains(document.activeElement)"
COUNTS = ("waiting", "active", "delayed", "completed", "failed", "cancelled")
TOTALS = (
    "total_enqueued",
    "total_sent",
    "total_failed",
    "total_retried",
    "total_rate_limited",
    "total_stalled",
    "total_cancelled",
    "total_duplicates",
)


async def test_overview_counts_match_get_stats(dashboard: Dashboard, page: Page) -> None:
    dash = dashboard
    dash.sim.block_chat("1666", PERMANENT, 400)
    delivered = await send(dash.client, "1001", "one", "two", "three", "four")
    failed = await send(dash.client, "1666", "bad one", "bad two", "bad three")
    later = await dash.client.send("1002", "tomorrow", delay=3600)
    assert isinstance(later, pb.SendResponse)
    cancelled = await dash.client.send("1002", "never", delay=3600)
    assert isinstance(cancelled, pb.SendResponse)
    await dash.client.cancel_job(cancelled.job_id)
    await wait_final(dash.client, delivered + failed)
    stats = await dash.client.stats()
    # The mix is what the test meant: some delivered, some failed, one delayed, one cancelled.
    assert (stats.completed, stats.failed, stats.delayed, stats.cancelled) == (4, 3, 1, 1)

    await login(page, dash)
    for name in COUNTS + TOTALS:
        await expect(page.locator(f'[data-count="{name}"]')).to_have_text(str(getattr(stats, name)))
    await expect(page.locator('[data-count="dispatchers"]')).to_have_text(str(stats.dispatchers))
    await expect(page.locator('[data-chart="throughput"]')).to_be_visible()
    # The chart has its text alternative.
    await expect(page.locator('[data-chart="throughput"] desc')).to_contain_text("delivered")


async def search(page: Page, query: str) -> None:
    box = page.get_by_label("Search jobs")
    await box.fill(query)
    await box.press("Enter")
    await expect(page.locator("h1")).to_contain_text(query)


async def test_search_by_chat_and_by_text(dashboard: Dashboard, page: Page) -> None:
    dash = dashboard
    [fruit] = await send(dash.client, "2001", "An alpha banana split")
    [pie] = await send(dash.client, "2002", "cherry pie")
    [other] = await send(dash.client, "2001", "nothing sweet")
    keyed = await dash.client.send("2003", "about order-key-77", idempotency_key="order-key-77")
    assert isinstance(keyed, pb.SendResponse)
    await wait_final(dash.client, [fruit, pie, other, keyed.job_id])
    await login(page, dash)

    await search(page, "2001")
    results = page.locator('[data-results="chat"]')
    await expect(results.locator(f'tr[data-key="{fruit}"]')).to_be_visible()
    await expect(results.locator(f'tr[data-key="{other}"]')).to_be_visible()
    await expect(results.locator("tbody tr")).to_have_count(2)

    await search(page, "BANANA")
    results = page.locator('[data-results="text"]')
    await expect(results.locator(f'tr[data-key="{fruit}"]')).to_be_visible()
    await expect(results.locator("tbody tr")).to_have_count(1)
    await expect(page.locator("[data-examined]")).to_contain_text("examined")

    # A job id finds that job.
    await search(page, pie)
    await expect(page.get_by_role("heading", name="Job with this id")).to_be_visible()
    await expect(page.locator(f'tr[data-key="{pie}"]').first).to_be_visible()

    # So does its idempotency key; the texts are then searched only on request.
    await search(page, "order-key-77")
    await expect(page.get_by_role("heading", name="Job with this idempotency key")).to_be_visible()
    await expect(page.locator(f'tr[data-key="{keyed.job_id}"]')).to_be_visible()
    await expect(page.locator("[data-text-skipped]")).to_be_visible()
    await page.get_by_role("link", name="Search the texts too").click()
    results = page.locator('[data-results="text"]')
    await expect(results.locator(f'tr[data-key="{keyed.job_id}"]')).to_be_visible()
    await expect(page.locator("[data-text-skipped]")).to_have_count(0)


async def test_retry_from_the_page_delivers_the_job(dashboard: Dashboard, page: Page) -> None:
    dash = dashboard
    dash.sim.block_chat("3003", PERMANENT, 400)
    [job_id] = await send(dash.client, "3003", "try me again")
    await wait_states(dash.client, [job_id], pb.JOB_STATE_FAILED)
    await login(page, dash, route="#/jobs/failed")
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    await expect(row).to_be_visible()

    dash.sim.unblock_chat("3003")  # the chat accepts messages again
    await row.get_by_role("button", name=f"Retry job {job_id}").click()
    await wait_states(dash.client, [job_id], pb.JOB_STATE_COMPLETED)
    # The live stream marks the row: the job left the failed list, delivered.
    await expect(row).to_have_attribute("data-left", "completed")

    await row.get_by_role("link", name=job_id).click()
    await expect(page.locator('[data-field="state"] [data-state]')).to_have_text("completed")
    job = await dash.client.get_job(job_id)
    await expect(page.locator('[data-field="telegram_message_id"]')).to_contain_text(
        str(job.telegram_message_id)
    )


async def test_bulk_retry_touches_only_the_filtered_chat(dashboard: Dashboard, page: Page) -> None:
    dash = dashboard
    dash.sim.block_chat("4001", PERMANENT, 400)
    dash.sim.block_chat("4002", PERMANENT, 400)
    mine = await send(dash.client, "4001", "a", "b", "c")
    others = await send(dash.client, "4002", "x", "y")
    await wait_states(dash.client, mine + others, pb.JOB_STATE_FAILED)
    dash.sim.unblock_chat("4001")
    dash.sim.unblock_chat("4002")
    await login(page, dash, route="#/jobs/failed")

    await page.get_by_label("Chat id (optional)").fill("4001")
    await page.get_by_role("button", name="Retry all failed…").click()
    dialog = page.locator("#confirm-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_role("heading")).to_have_text("Retry 3 failed jobs of chat 4001?")
    await expect(dialog.locator(".sample-ids li")).to_have_count(3)
    for job_id in mine:
        await expect(dialog.locator(".sample-ids")).to_contain_text(job_id)
    # Asking changed nothing.
    assert [(await dash.client.get_job(j)).state for j in mine] == [pb.JOB_STATE_FAILED] * 3

    await dialog.get_by_role("button", name="Retry 3").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#status")).to_have_text("Retried 3 jobs.")
    await wait_states(dash.client, mine, pb.JOB_STATE_COMPLETED)
    for job_id in others:
        assert (await dash.client.get_job(job_id)).state == pb.JOB_STATE_FAILED


async def test_bulk_dialog_cancel_and_escape_change_nothing(
    dashboard: Dashboard, page: Page
) -> None:
    dash = dashboard
    dash.sim.block_chat("4101", PERMANENT, 400)
    mine = await send(dash.client, "4101", "a", "b")
    await wait_states(dash.client, mine, pb.JOB_STATE_FAILED)
    await login(page, dash, route="#/jobs/failed")
    opener = page.get_by_role("button", name="Retry all failed…")
    dialog = page.locator("#confirm-dialog")

    await opener.click()
    await expect(dialog).to_be_visible()
    # Focus starts inside the dialog and Tab keeps it there (the page behind is inert).
    for _ in range(4):
        await page.keyboard.press("Tab")
        assert await page.evaluate(IN_DIALOG)
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(opener).to_be_focused()

    await opener.click()
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#status")).to_have_text("Nothing changed.")
    assert [(await dash.client.get_job(j)).state for j in mine] == [pb.JOB_STATE_FAILED] * 2

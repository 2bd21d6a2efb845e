"""Who may see and do what on the dashboard, and that a keyboard and a phone can use it."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from playwright.async_api import Page, expect

from notigate_client import pb
from tests.browser.conftest import ADMIN_TOKEN, READONLY_TOKEN, Dashboard, login
from tests.browser.helpers import PERMANENT, send, wait_states

pytestmark = pytest.mark.browser

# fetch() from inside the page, with the page's cookie; the CSRF header only when given.
FORGED_POST = """async ([path, csrf]) => {
  const headers = {"Content-Type": "application/json"};
  if (csrf) headers["X-CSRF-Token"] = csrf;
  const r = await fetch(path, {method: "POST", headers, body: "{}"});
  return {status: r.status, body: await r.json()};
}"""
SESSION = "async () => (await fetch('/api/session')).json()"


async def failed_job(dash: Dashboard, chat: str) -> str:
    dash.sim.block_chat(chat, PERMANENT, 400)
    [job_id] = await send(dash.client, chat, "a message that failed")
    await wait_states(dash.client, [job_id], pb.JOB_STATE_FAILED)
    dash.sim.unblock_chat(chat)
    return job_id


async def test_read_only_sees_no_actions_and_cannot_act(dashboard: Dashboard, page: Page) -> None:
    dash = dashboard
    job_id = await failed_job(dash, "5001")
    await dash.client.send("5002", "held back", delay=3600)
    dash.sim.block_chat("5003")  # 403: the chat ends up suppressed
    [blocked] = await send(dash.client, "5003", "to a user who blocked the bot")
    await wait_states(dash.client, [blocked], pb.JOB_STATE_FAILED)

    await login(page, dash, token=READONLY_TOKEN)
    await expect(page.locator("#role-badge")).to_have_text("read-only")
    for route, ready in [
        ("#/", '[data-count="failed"]'),
        ("#/jobs/failed", f'tr[data-job-id="{job_id}"]'),
        ("#/jobs/delayed", "tbody tr"),
        (f"#/job/{job_id}", '[data-field="state"]'),
        ("#/suppressed", 'tr[data-key="5003"]'),
        ("#/search?q=5001", f'tr[data-key="{job_id}"]'),
    ]:
        await page.goto(f"{dash.url}/{route}")
        await expect(page.locator(ready).first).to_be_visible()
        await expect(page.locator("button[data-action], form.bulk")).to_have_count(0)

    session: dict[str, Any] = await page.evaluate(SESSION)
    assert session["role"] == "read_only"
    forged = await page.evaluate(FORGED_POST, [f"/api/jobs/{job_id}/retry", session["csrf_token"]])
    assert forged["status"] == 403
    assert forged["body"]["error"]["reason"] == "READ_ONLY"
    assert (await dash.client.get_job(job_id)).state == pb.JOB_STATE_FAILED


async def test_post_without_csrf_header_is_refused_for_admin(
    dashboard: Dashboard, page: Page
) -> None:
    dash = dashboard
    job_id = await failed_job(dash, "5101")
    await login(page, dash)
    session: dict[str, Any] = await page.evaluate(SESSION)
    assert session["role"] == "admin"
    for path in (f"/api/jobs/{job_id}/retry", "/api/bulk"):
        refused = await page.evaluate(FORGED_POST, [path, ""])
        assert refused["status"] == 403, path
        assert refused["body"]["error"]["reason"] == "CSRF"
        wrong = await page.evaluate(FORGED_POST, [path, "not-the-token"])
        assert wrong["status"] == 403 and wrong["body"]["error"]["reason"] == "CSRF"
    assert (await dash.client.get_job(job_id)).state == pb.JOB_STATE_FAILED
    # With the header the same session may act: the refusals above were the header's.
    done = await page.evaluate(FORGED_POST, [f"/api/jobs/{job_id}/retry", session["csrf_token"]])
    assert done["status"] == 200


async def test_no_session_shows_only_the_login(dashboard: Dashboard, page: Page) -> None:
    dash = dashboard
    await send(dash.client, "6001", "secret text of a job")
    async with aiohttp.ClientSession() as http:
        for path in ("/api/session", "/api/overview", "/api/jobs?state=waiting", "/api/events"):
            async with http.get(f"{dash.url}{path}") as r:
                assert r.status == 401, path
                assert (await r.json())["error"]["http"] == 401

    await page.goto(f"{dash.url}/#/jobs/waiting")
    await expect(page.get_by_label("API token")).to_be_visible()
    await expect(page.get_by_label("API token")).to_have_attribute("type", "password")
    await expect(page.locator("#main-nav")).to_be_hidden()
    await expect(page.locator("#session-tools")).to_be_hidden()
    await expect(page.locator("[data-count], table")).to_have_count(0)
    assert "secret text" not in await page.content()

    # A wrong token is refused in the alert region, and still nothing is shown.
    await page.get_by_label("API token").fill("not-a-token")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("not accepted")
    await expect(page.locator("#main-nav")).to_be_hidden()


async def test_keyboard_and_narrow_screen(dashboard: Dashboard, page: Page) -> None:
    dash = dashboard
    job_id = await failed_job(dash, "7001")
    await page.goto(dash.url)
    await expect(page.get_by_label("API token")).to_be_focused()
    await page.keyboard.type("wrong")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("alert")).to_contain_text("not accepted")

    # The skip link comes first, then the brand, then the form: token, then the button.
    await page.keyboard.press("Shift+Tab")
    await page.keyboard.press("Shift+Tab")
    await expect(page.locator("#skip-link")).to_be_focused()
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("API token")).to_be_focused()
    await page.keyboard.press("Control+A")
    await page.keyboard.type(ADMIN_TOKEN)
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Sign in")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#main-nav")).to_be_visible()

    # Tab to the nav's "Jobs" link and follow it with Enter.
    jobs_link = page.locator("#main-nav").get_by_role("link", name="Jobs")
    for _ in range(30):
        await page.keyboard.press("Tab")
        if await jobs_link.evaluate("el => el === document.activeElement"):
            break
    await expect(jobs_link).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("h1")).to_have_text("Jobs: waiting")
    await expect(jobs_link).to_have_attribute("aria-current", "page")

    # The skip link moves focus to the main content without losing the route.
    await page.locator("#skip-link").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#main")).to_be_focused()
    assert page.url.endswith("#/jobs/waiting")

    await page.set_viewport_size({"width": 375, "height": 800})
    for route, ready in [
        ("#/", '[data-count="failed"]'),
        ("#/jobs/failed", f'tr[data-job-id="{job_id}"]'),
        (f"#/job/{job_id}", '[data-field="state"]'),
        (f"#/search?q={job_id}", f'tr[data-key="{job_id}"]'),
    ]:
        await page.goto(f"{dash.url}/{route}")
        await expect(page.locator(ready).first).to_be_visible()
        width = await page.evaluate("document.body.scrollWidth")
        assert width <= 375, (route, width)

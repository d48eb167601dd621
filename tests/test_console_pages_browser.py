"""The newer console pages render in a real browser (Playwright + Debian's chromium): customers,
a campaign, the sending policy, content screening and announcements. Screenshots go to
docs/console/ (shown in docs/customers.md, docs/screening.md, docs/outgoing-policy.md)."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from harness import CHROMIUM, Server, screenshots

SHOTS = screenshots("console")

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="chromium is not installed")


def login(browser: Any, srv: Server, who: str) -> Any:
    from playwright.sync_api import expect

    page = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
    page.set_default_timeout(30_000)
    page.goto(srv.url + "/console/login")
    page.fill("input[name=username]", srv.demo[who]["username"])
    page.fill("input[name=password]", srv.demo[who]["password"])
    page.click("button[type=submit]")
    expect(page.locator("#logout")).to_be_visible()
    return page


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_customer_campaign_policy_screening_and_announcement_pages(make_server: Any, browser: Any) -> None:
    from playwright.sync_api import expect

    srv: Server = make_server()
    lee = login(browser, srv, "console")

    lee.click("nav >> text=Customers")
    for phone, name, tags in (("79990000002", "Ben", "vip"), ("79990000003", "Cleo", "vip newsletter")):
        lee.fill("input[name=phone]", phone)
        lee.fill("input[name=name]", name)
        lee.fill("input[name=tags]", tags)
        lee.check("input[name=consent]")
        lee.fill("input[name=consent_source]", "signed form")
        lee.click("#add-contact")
        expect(lee.locator(".flash")).to_contain_text("added")
        lee.click("nav >> text=Customers")
    expect(lee.locator("#contacts tr[data-phone]")).to_have_count(2)
    shot(lee, "customers")

    lee.click("nav >> text=Campaigns")
    lee.fill("input[name=name]", "Spring sale")
    lee.fill("input[name=tag]", "vip")
    lee.fill("textarea[name=text]", "Hello {name}, 20% off this week.")
    lee.fill("input[name=interval]", "5")
    lee.click("#create-campaign")
    expect(lee.locator("#campaign-status")).to_have_text("draft")
    lee.click("#campaign-start")
    expect(lee.locator(".flash")).to_contain_text("Campaign started")
    step = lee.locator("#recipients tr[data-phone='79990000002'] .step")
    for _ in range(100):  # the first step runs on the server's timer heap; reload until it has
        if step.inner_text() == "sent":
            break
        lee.wait_for_timeout(300)
        lee.reload()
    expect(step).to_have_text("sent")
    shot(lee, "campaign")

    lee.goto(f"{srv.url}/console/instances/{srv.instance(0)['idInstance']}")
    card = lee.locator("#send-policy")
    card.locator("input[name=quiet_from]").fill("22:00")
    card.locator("input[name=quiet_to]").fill("08:00")
    card.locator("input[name=daily_limit]").fill("500")
    card.locator("input[name=pause_after_failures]").fill("5")
    card.locator("#save-policy").click()
    expect(lee.locator(".flash")).to_contain_text("Sending policy saved")
    lee.locator("#send-policy").screenshot(path=str(SHOTS / "send-policy.png"))

    op = login(browser, srv, "operator")
    op.click("nav >> text=Screening")
    op.select_option("#rules select[name=kind]", "domain")
    op.fill("#rules input[name=value]", "evil.example")
    op.select_option("#rules select[name=action]", "review")
    op.fill("#rules input[name=note]", "suspicious links")
    op.click("#add-rule")
    expect(op.locator(".flash")).to_contain_text("is active")
    api = srv.api(srv.instance(0))
    assert api.sending.sendMessage("79990000002@c.us", "see http://evil.example/offer").code == 200
    op.reload()
    expect(op.locator("#review-queue .case")).to_have_count(1)
    shot(op, "screening")

    op.click("nav >> text=Announcements")
    op.fill("input[name=subject]", "Maintenance on Sunday")
    op.fill("textarea[name=text]", "The service restarts on Sunday at 03:00 UTC for a few minutes.")
    op.click("#preview-announcement")
    expect(op.locator("#preview-subject")).to_have_text("Maintenance on Sunday")
    expect(op.locator("#preview-body")).to_contain_text("restarts on Sunday")
    op.fill("#test-to", "operator@example.test")
    op.click("#test-announcement")
    expect(op.locator(".flash")).to_contain_text("nobody else received it")
    expect(op.locator("#announcements")).to_have_count(0)  # nothing went to the users
    op.click("#send-announcement")  # the confirmation box is not ticked: the browser stops it
    expect(op.locator(".flash")).to_contain_text("nobody else received it")
    op.check("#confirm-announcement")
    op.click("#send-announcement")
    expect(op.locator(".flash")).to_contain_text("Sending to")
    shot(op, "announcements")

"""The instance's Health card and the operator's list of silent instances, in a real browser
(Playwright + Debian's chromium), at desktop and phone width (issue 18, point 5)."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from harness import CHROMIUM, Server, screenshots

SHOTS = screenshots("console")

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="chromium is not installed")


def login(browser: Any, srv: Server, who: str, width: int) -> Any:
    from playwright.sync_api import expect

    page = browser.new_context(viewport={"width": width, "height": 844}).new_page()
    page.set_default_timeout(30_000)
    page.goto(srv.url + "/console/login")
    page.fill("input[name=username]", srv.demo[who]["username"])
    page.fill("input[name=password]", srv.demo[who]["password"])
    page.click("button[type=submit]")
    expect(page.locator("#logout")).to_be_attached()  # at phone width it sits in the folded menu
    return page


def fits(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


@pytest.mark.parametrize("width", [1100, 390])
def test_health_card_and_silent_instances(make_server: Any, browser: Any, width: int) -> None:
    from playwright.sync_api import expect

    srv: Server = make_server()
    inst = srv.instance(0)
    # An unlinked instance's queue: three accepted messages wait for the link.
    waiting = srv.new_instance()
    api = srv.api(waiting)
    for n in range(3):
        assert api.sending.sendMessage("79990000002@c.us", f"waiting {n}").code == 200

    lee = login(browser, srv, "console", width)
    lee.goto(f"{srv.url}/console/instances/{waiting['idInstance']}")
    card = lee.locator("#instance-health")
    expect(card).to_be_visible()
    expect(lee.locator("#health-queued")).to_have_text("3")
    expect(lee.locator("#health-webhook-error")).to_contain_text("none")
    assert fits(lee), "the instance page is wider than the screen"
    if width == 390:
        card.screenshot(path=str(SHOTS / "instance-health.png"))

    op = login(browser, srv, "operator", width)
    op.goto(f"{srv.url}/console/operator/silent?hours=0.0001")  # silent for more than 0.36 s
    table = op.locator("#silent-instances")
    expect(table).to_contain_text(str(inst["idInstance"]))  # linked at the start, silent since
    assert fits(op), "the silent-instances page is wider than the screen"
    op.fill("#silent-hours", "nonsense")
    op.locator("#silent-form button").click()
    expect(op.locator("body")).to_contain_text("hours")
    assert op.locator("#silent-instances").count() == 0

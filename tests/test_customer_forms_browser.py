"""Issue 13 item 9 in a real browser (Playwright + Debian's chromium) on a 390 × 844 phone screen:
the customer and campaign forms are refused with every error under its field and the input kept,
then corrected and accepted; no page, refused or not, is wider than the screen.
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from harness import CHROMIUM, Server
from test_console_journey_browser import Walk

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="chromium is not installed")


def inside_the_screen(walk: Walk, selector: str) -> None:
    """The element is fully visible across: its right edge is on the screen."""
    box = walk.page.locator(selector).bounding_box()
    view = walk.page.evaluate("window.innerWidth")
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= view, (selector, box, view)


def test_customer_and_campaign_forms_refused_then_fixed_on_a_phone(make_server: Any, browser: Any) -> None:
    from playwright.sync_api import expect

    srv: Server = make_server()
    walk = Walk(browser, srv, "phone")
    page = walk.page
    walk.goto("/console/login")
    page.fill("input[name=username]", srv.demo["console"]["username"])
    page.fill("input[name=password]", srv.demo["console"]["password"])
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_be_visible()

    # A contact with three mistakes: all three named under their fields at once, the rest kept.
    walk.goto("/console/customers")
    expect(page.locator("label[for=add-phone] .req")).to_be_visible()
    expect(page.locator("#add-phone-hint")).to_contain_text("7 to 15 digits")
    page.fill("#add-phone", "12")
    page.fill("#add-name", "Olga Phone")
    page.fill("#add-tags", "vip bad!tag")
    page.check("#add-consent")
    page.click("#add-contact")
    expect(page.locator(".error")).to_have_text("Not done yet: please correct the 3 marked fields.")
    expect(page.locator("#add-phone-error")).to_contain_text("7 to 15 digits")
    expect(page.locator("#add-tags-error")).to_contain_text("'bad!tag'")
    expect(page.locator("#add-consent_source-error")).to_contain_text("Say how the consent was given")
    expect(page.locator("#add-name")).to_have_value("Olga Phone")
    expect(page.locator("#add-phone")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#add-consent")).to_be_checked()
    walk.fits()
    for selector in ("#add-phone-error", "#add-tags-error", "#add-consent_source-error", "#add-contact"):
        inside_the_screen(walk, selector)
    walk.shot("customer-form-refused")

    page.fill("#add-phone", "+7 999 404-00-01")
    page.fill("#add-tags", "vip")
    page.fill("#add-consent_source", "web form")
    page.click("#add-contact")
    expect(page.locator(".flash")).to_contain_text("Contact +79994040001 added.")
    walk.fits()

    # A campaign without a name and with too short a pause: both errors, the text kept.
    walk.goto("/console/campaigns")
    expect(page.locator("label[for=campaign-text] .req")).to_be_visible()
    page.fill("#campaign-text", "Hello {name}, spring sale!")
    page.fill("#campaign-interval", "0")
    page.click("#create-campaign")
    expect(page.locator(".error")).to_have_text("Not done yet: please correct the 2 marked fields.")
    expect(page.locator("#campaign-name-error")).to_have_text("The campaign needs a name")
    expect(page.locator("#campaign-interval-error")).to_contain_text("A whole number of seconds")
    expect(page.locator("#campaign-text")).to_have_value("Hello {name}, spring sale!")
    expect(page.locator("#campaign-interval")).to_have_value("0")
    walk.fits()
    for selector in ("#campaign-name-error", "#campaign-interval-error", "#create-campaign"):
        inside_the_screen(walk, selector)
    walk.shot("campaign-form-refused")

    page.fill("#campaign-name", "Spring sale")
    page.fill("#campaign-interval", "60")
    page.click("#create-campaign")
    expect(page.locator(".flash")).to_contain_text("Campaign saved as a draft.")
    expect(page.locator("h1")).to_contain_text("Spring sale")
    walk.fits()
    assert walk.checked >= 6

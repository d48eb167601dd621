"""Issue 13's walk, as a new user meets Verdigris, in a real browser (Playwright + Debian's chromium).

On a fresh server with the embedded defaults (no SMTP server): register → read the sign-up mail in
the development mailbox → confirm the address → log in → create an instance that receives
notifications → link it with a sandbox phone → write to it as a customer's sandbox phone and read
the reply → buy a plan → the operator marks it paid (reference, confirmation) → the instance keeps
working, showing "Business starts on <date>" → the next day the paid license is active; and the
operator's overview. The walk runs on a desktop screen and on a 390 × 844 phone screen; on every
page it asserts that nothing is wider than the screen. Screenshots go to docs/console/.
"""

from __future__ import annotations

import re
import shutil
from datetime import date
from typing import Any

import pytest

from console_client import credentials
from harness import CHROMIUM, Server, screenshots

SHOTS = screenshots("console")
SCREENS = {"desktop": {"width": 1100, "height": 900}, "phone": {"width": 390, "height": 844}}

WIDEST = """(view) => [...document.querySelectorAll('main *')]
  .filter(e => e.getBoundingClientRect().right > view && !e.closest('.scroll, table'))
  .slice(-5).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"""

# A table.list that ends below its card, or a card that overlaps the next one.
COLLISIONS = """() => {
  const out = [];
  for (const t of document.querySelectorAll('main table.list')) {
    const card = t.closest('.card');
    if (card && t.getBoundingClientRect().bottom > card.getBoundingClientRect().bottom + 1)
      out.push('table ' + (t.id || '') + ' ends below its card');
  }
  const cards = [...document.querySelectorAll('main .card')].filter(c => !c.parentElement.closest('.card'));
  for (let i = 1; i < cards.length; i++) {
    const above = cards[i - 1].getBoundingClientRect(), below = cards[i].getBoundingClientRect();
    if (below.top < above.bottom - 1 && below.left < above.right && above.left < below.right)
      out.push('card ' + i + ' overlaps the card above it');
  }
  return out;
}"""

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="chromium is not installed")


class Walk:
    """One browser user: every page it opens is checked for sideways overflow and for tables
    that run out of their card."""

    def __init__(self, browser: Any, srv: Server, screen: str) -> None:
        self.srv = srv
        self.screen = screen
        self.context = browser.new_context(viewport=SCREENS[screen])
        self.context.set_default_timeout(30_000)
        self.page = self.context.new_page()
        self.page.on("load", lambda _: self.fits())
        self.checked = 0

    def fits(self) -> None:
        width, view = self.page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        if width > view:  # name the elements that stick out, to make the failure useful
            wide = self.page.evaluate(WIDEST, view)
            raise AssertionError(f"{self.page.url} is {width}px wide on a {view}px screen: {wide}")
        collisions = self.page.evaluate(COLLISIONS)
        assert not collisions, f"{self.page.url}: {collisions}"
        # Texts are written for people: no Python None, pydantic prefixes or bytes literals.
        text = self.page.locator("main").inner_text()
        leaked = re.search(r"\bNone\b|Value error|\bb'[^']*'", text)
        assert leaked is None, f"{self.page.url} shows {leaked.group(0)!r}"
        self.checked += 1

    def goto(self, path: str) -> None:
        self.page.goto(self.srv.url + path)
        self.fits()

    def menu(self, name: str) -> None:
        """Follow a menu link (on a phone the menu opens first)."""
        if self.screen == "phone":
            self.page.click("label[for=menu-toggle]")
        self.page.click(f"nav >> text={name}")

    def shot(self, name: str) -> None:
        self.fits()
        SHOTS.mkdir(parents=True, exist_ok=True)
        suffix = "" if self.screen == "desktop" else "-phone"
        self.page.screenshot(path=str(SHOTS / f"walk-{name}{suffix}.png"), full_page=True)


@pytest.mark.parametrize("screen", ["desktop", "phone"])
def test_a_new_user_from_sign_up_to_a_paid_license(make_server: Any, browser: Any, screen: str) -> None:
    from playwright.sync_api import expect

    srv: Server = make_server(
        env={"VERDIGRIS_SANDBOX_CLOCK": "true", "VERDIGRIS_LICENSING_FLUSH_SECONDS": "0.2"}
    )
    dana = Walk(browser, srv, screen)
    page = dana.page

    # Sign up. No mail server is configured, so the page offers the development mailbox.
    dana.goto("/")
    page.click("text=Create an account")
    page.fill("input[name=name]", "Dana Doe")
    page.fill("input[name=email]", "dana@example.test")
    page.fill("input[name=phone]", "+79995550100")
    page.fill("input[name=organisation]", "Doe Bakery")
    page.fill("input[name=username]", "dana")
    page.check("input[name=accept_agreement]")
    page.check("input[name=accept_privacy]")
    page.click("button[type=submit]")
    expect(page.locator("#dev-mailbox")).to_contain_text("Development convenience")
    page.click("#open-mailbox")
    expect(page.locator("#dev-mailbox-note")).to_contain_text("Development convenience")
    mail = page.locator("pre.mail-body").first
    expect(mail).to_contain_text("dana")
    dana.shot("mailbox")
    username, password, _ = credentials(mail.inner_text())
    mail.locator("a[href*='/console/verify/']").click()
    expect(page.locator(".flash")).to_contain_text("confirmed")

    # Log in and create an instance that receives notifications.
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page.locator("#create-instance")).to_be_visible()
    page.fill("#create-form input[name=name]", "Bakery bot")
    expect(page.locator("#notifications-yes")).to_be_checked()
    dana.shot("instances-empty")
    page.click("#create-instance")
    expect(page.locator("h1")).to_contain_text("Bakery bot")
    expect(page.locator("#state")).to_have_text("notAuthorized")
    expect(page.locator("#qr")).to_be_visible()
    expect(page.locator("[data-setting=incomingWebhook] select")).to_have_value("yes")
    instance_id = int(page.locator("#id-instance").inner_text())

    # Link it with a sandbox phone: add the shop's phone, let it scan the QR code.
    page.fill("#sandbox-number", "79995550101")
    page.fill("#sandbox-name", "Bakery phone")
    page.click("#create-sandbox-phone")
    expect(page.locator(".flash")).to_contain_text("+79995550101 is ready")
    dana.shot("instance-qr")
    page.locator("tr[data-phone='79995550101'] button.scan-qr").click()
    expect(page.locator(".flash")).to_contain_text("scanned the QR code")
    expect(page.locator("#state")).to_have_text("authorized")
    page.click("#reveal-token")
    expect(page.locator("code#token")).to_have_text(re.compile(r"^[0-9a-f]{50}$"))
    inst = {"idInstance": instance_id, "apiTokenInstance": page.locator("code#token").inner_text()}

    # A customer's sandbox phone writes; the instance sees it (and notifies); it answers.
    page.fill("#sandbox-number", "79995550102")
    page.fill("#sandbox-name", "Customer")
    page.click("#create-sandbox-phone")
    page.locator("tr[data-phone='79995550102'] a.open-phone").click()
    expect(page.locator("h1")).to_contain_text("+79995550102")
    page.fill("#phone-text", "Do you have rye bread today?")
    page.click("#phone-send")
    expect(page.locator(".flash")).to_have_text("Sent.")
    received = srv.wire(inst, "receiveNotification").json()
    assert received and received["body"]["typeWebhook"] == "incomingMessageReceived", received
    page.click(f"text=Bakery bot {instance_id}")
    expect(page.locator("#journal")).to_contain_text("Do you have rye bread today?")
    page.fill("#send-chat", "79995550102")
    page.fill("#send-text", "Yes, until 6 pm")
    page.click("#send")
    expect(page.locator(".flash")).to_contain_text("Message queued")
    dana.shot("instance")
    page.locator("tr[data-phone='79995550102'] a.open-phone").click()
    expect(page.locator("#sandbox-chat [data-direction=incoming]")).to_contain_text("Yes, until 6 pm")
    dana.shot("sandbox-phone")

    # Buy a plan.
    dana.menu("Billing")
    card = page.locator(f"#license-{instance_id}")
    expect(card.locator("h2")).to_contain_text("Bakery bot")
    today = date.fromisoformat(re.search(r"Today is (\S+)", page.locator("main").inner_text()).group(1))  # type: ignore[union-attr]
    card.locator("form.buy select[name=tariff]").select_option("business")
    card.locator("form.buy button[type=submit]").click()
    expect(page.locator("#invoice-status")).to_have_text("issued")
    number = page.locator("h1").inner_text().split()[1]

    # The operator sees it waiting on the overview, and marks it paid with a reference.
    op = Walk(browser, srv, screen)
    op.goto("/console/login")
    op.page.fill("input[name=username]", srv.demo["operator"]["username"])
    op.page.fill("input[name=password]", srv.demo["operator"]["password"])
    op.page.click("button[type=submit]")
    expect(op.page.locator("#waiting-invoices")).to_contain_text("1 invoice")
    op.menu("Billing desk")
    row = op.page.locator(f"#op-invoices tr[data-invoice='{number}']")
    row.locator("input[name=reference]").fill("BANK-0042")
    row.locator("button.mark-paid").click()
    expect(op.page.locator("#confirm-reference")).to_have_text("BANK-0042")
    expect(op.page.locator("#confirm-total")).to_contain_text("12.00 USD")
    op.shot("mark-paid")
    op.page.click("#confirm-mark-paid")
    expect(op.page.locator(".flash")).to_contain_text(f"{number} marked paid")

    # Paid today, the license starts tomorrow: until then the instance keeps working as before.
    dana.goto("/console/instances")
    starts = page.locator(f"#instances tr:has(a[href$='/instances/{instance_id}']) .license-next")
    expect(starts).to_contain_text("Business starts on")
    first_day = date.fromisoformat(starts.inner_text().rsplit(" ", 1)[1])
    assert first_day > today
    expect(page.locator("#instances .state-authorized")).to_have_count(1)
    dana.shot("instances")
    page.click(f"#instances a[href$='/instances/{instance_id}']")
    expect(page.locator("#license")).to_contain_text(f"Business starts on {first_day.isoformat()}")
    page.fill("#send-chat", "79995550102")
    page.fill("#send-text", "Still open today")
    page.click("#send")
    expect(page.locator(".flash")).to_contain_text("Message queued")
    sent = srv.wire(
        inst, "sendMessage", verb="POST", json={"chatId": "79995550102@c.us", "message": "Sent by API"}
    )
    assert sent.status_code == 200, sent.text

    # The next day the paid license is active.
    assert srv.sandbox("POST", "/clock", json={"advanceSeconds": 86_400}).status_code == 200
    page.reload()
    expect(page.locator("#license")).to_contain_text("Business until")
    expect(page.locator("#license .license-next")).to_have_count(0)
    assert srv.wire(inst, "getStateInstance").json() == {"stateInstance": "authorized"}
    dana.menu("Billing")
    expect(card.locator(".current")).to_contain_text("Business")
    expect(card.locator(".license-state")).to_have_text("active")
    dana.shot("billing")

    # The operator's overview counts the payment.
    op.goto("/console/")
    expect(op.page.locator("#overview-revenue")).to_contain_text("12.00 USD")
    expect(op.page.locator("#waiting-invoices")).to_contain_text("0 invoices")
    op.shot("overview")

    # Every other page of the menu fits the screen too (the load handler checks each one).
    for path in ("/team", "/account", "/events", "/customers", "/campaigns", "/tariffs", "/agreement"):
        dana.goto("/console" + path)
    dana.goto("/console/team")
    page.fill("#invite-email", "vic@example.test")
    page.click("#invite")
    expect(page.locator(".flash")).to_contain_text("Invitation sent")
    dana.shot("team")
    for path in (
        "/instances",
        "/operator/accounts",
        "/operator/agreements",
        "/operator/screening",
        "/operator/announcements",
        "/operator/outbox",
        "/operator/events",
        "/account",
    ):
        op.goto("/console" + path)
    assert dana.checked > 20 and op.checked > 15
    dana.context.close()
    op.context.close()

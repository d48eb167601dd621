"""Issue 13 items 9, 11, 14, 15 and 19 in a real browser (Playwright + Debian's chromium), on a
desktop screen and a 390 × 844 phone screen; every page is checked for sideways overflow and for
tables that run out of their card. Screenshots go to docs/console/.

Forms: a refused sign-up shows each error under its field, keeps what was typed, marks required
fields. The instance page shows the QR code at once; the pairing code stays out of the URL and is
copied with a button; queue *Clear* asks first. The message journal lists chats, shows a history,
searches. Team invitations start at the least powerful role. An announcement is previewed and
tested before a confirmed send.
"""

from __future__ import annotations

import re
import shutil
from typing import Any

import pytest

from harness import CHROMIUM, Server
from test_console_journey_browser import Walk

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="chromium is not installed")


def log_in(walk: Walk, who: dict[str, Any]) -> None:
    walk.goto("/console/login")
    walk.page.fill("input[name=username]", who["username"])
    walk.page.fill("input[name=password]", who["password"])
    walk.page.click("button[type=submit]")


@pytest.mark.parametrize("screen", ["desktop", "phone"])
def test_forms_journals_and_safe_buttons(make_server: Any, browser: Any, screen: str) -> None:
    from playwright.sync_api import expect

    srv: Server = make_server()
    lee = Walk(browser, srv, screen)
    lee.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=srv.url)
    page = lee.page

    # A refused sign-up: every error under its field, the input kept, required fields marked.
    lee.goto("/console/register")
    expect(page.locator("label[for=f-name] .req")).to_be_visible()
    expect(page.locator("label[for=f-phone] .req")).to_have_count(0)
    expect(page.locator("#f-username-hint")).to_contain_text("3 to 32 lowercase letters")
    # A checkbox label holding a link reads as one line of text, not as columns.
    label = page.locator("label[for=f-accept_agreement] > span")
    link = label.locator("a")
    assert abs(link.bounding_box()["y"] - label.bounding_box()["y"]) < 4  # type: ignore[index]
    page.fill("#f-name", "Lee Example")
    page.fill("#f-email", "lee-at-example")
    page.fill("#f-organisation", "Lee & Co")
    page.fill("#f-username", "Lee Example")
    page.click("#register-form button[type=submit]")
    expect(page.locator(".error")).to_have_text("Not done yet: please correct the 4 marked fields.")
    expect(page.locator("#f-email-error")).to_have_text("Not a valid address")
    expect(page.locator("#f-username-error")).to_contain_text("3 to 32 characters")
    expect(page.locator("#f-accept_agreement-error")).to_contain_text("user agreement")
    expect(page.locator("#f-accept_privacy-error")).to_contain_text("personal data")
    expect(page.locator("#f-name")).to_have_value("Lee Example")
    expect(page.locator("#f-organisation")).to_have_value("Lee & Co")
    expect(page.locator("#f-email")).to_have_attribute("aria-invalid", "true")
    lee.shot("form-errors")

    # The demo licensee: a new instance shows its QR code at once (no "Not linked" first).
    log_in(lee, srv.demo["console"])
    expect(page.locator("#create-instance")).to_be_visible()
    page.fill("#create-form input[name=name]", "Fresh bot")
    page.click("#create-instance")
    expect(page.locator("#qr")).to_be_visible()
    assert "A developer, admin or the owner can link it" not in page.content()
    fresh = page.url

    # A pairing code for a sandbox phone: shown on the page, never in the URL, copied by a button.
    page.fill("#sandbox-number", "79995550111")
    page.fill("#sandbox-name", "Pairing phone")
    page.click("#create-sandbox-phone")
    expect(page.locator(".flash")).to_contain_text("is ready")
    page.fill("#pairing-phone", "79995550111")
    page.click("text=Get a pairing code")
    code = page.locator("#pairing-code")
    expect(code).to_have_text(re.compile(r"^[0-9A-Z]{4}-[0-9A-Z]{4}$"))
    assert page.url == fresh and code.inner_text().replace("-", "") not in page.url
    page.click("button[data-copy='#pairing-code']")
    expect(page.locator("button[data-copy='#pairing-code']")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == code.inner_text()

    # Queue Clear asks first: dismissed, nothing is dropped; accepted, the message is withdrawn.
    page.click("#pause-queue")
    expect(page.locator("#queue-paused")).to_be_visible()
    page.fill("#send-chat", "79990000003")
    page.fill("#send-text", "Waits in the queue")
    page.click("#send")
    expect(page.locator("#queued")).to_have_text("1")
    asked: list[str] = []

    def dismiss(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.click("#clear-queue button")
    expect(page.locator("#queued")).to_have_text("1")
    assert asked and "Withdraw 1 queued message?" in asked[0]
    page.once("dialog", lambda d: d.accept())
    page.click("#clear-queue button")
    expect(page.locator(".flash")).to_have_text("1 queued message withdrawn.")

    # The message journal of a demo instance: chats, a chat's history, a search.
    inst = srv.instance(0)
    word = "pumpernickel"
    sent = srv.wire(
        inst, "sendMessage", verb="POST", json={"chatId": "79990000003@c.us", "message": f"Fresh {word}"}
    )
    assert sent.status_code == 200, sent.text
    lee.goto(f"/console/instances/{inst['idInstance']}")
    page.click("#open-journal")
    expect(page.locator("h1")).to_have_text("Message journal")
    expect(page.locator("#chats tr[data-chat='79990000003@c.us']")).to_be_visible()
    lee.shot("messages")
    page.fill("#journal-search", word.upper())
    page.click("#journal-search-go")
    expect(page.locator("#search-results h2")).to_contain_text("1 message with")
    page.locator("#search-results a", has_text="79990000003@c.us").first.click()
    expect(page.locator("#chat-history [data-direction=out]").last).to_contain_text(f"Fresh {word}")
    lee.shot("messages-chat")

    # The menu calls the sign-in log what it is; the team invites at the least powerful role.
    lee.menu("Sign-ins")
    expect(page.locator("h1")).to_contain_text("Sign-ins")
    lee.goto("/console/team")
    expect(page.locator("#invite-role")).to_have_value("viewer")
    page.fill("#invite-email", "not-an-address")
    page.click("#invite")
    expect(page.locator("#invite-email-error")).to_have_text("Not a valid address")
    expect(page.locator("#invite-email")).to_have_value("not-an-address")

    # The account page: password rules before any attempt; a refusal stays at its own form.
    lee.goto("/console/account")
    expect(page.locator("#password-new_password-hint")).to_contain_text("At least")
    page.fill("#password-password", "not the password")
    page.fill("#password-new_password", "short")
    page.fill("#password-repeat_password", "short")
    page.click("form[action$='/account/password'] button[type=submit]")
    expect(page.locator("#password-password-error")).to_have_text("Wrong")
    expect(page.locator("#username-password-error")).to_have_count(0)
    lee.shot("account-errors")
    assert lee.checked > 10
    lee.context.close()

    # The operator's announcement: a preview and a test before anything goes to everyone.
    op = Walk(browser, srv, screen)
    log_in(op, srv.demo["operator"])
    op.menu("Announcements")
    op.page.fill("input[name=subject]", "Maintenance on Sunday")
    op.page.fill("textarea[name=text]", "The service restarts on Sunday at 03:00 UTC.\nNothing is lost.")
    op.page.click("#preview-announcement")
    expect(op.page.locator("#preview-body")).to_contain_text("Nothing is lost.")
    expect(op.page.locator("#preview-recipients")).to_have_text(re.compile(r"^\d+ users?$"))
    op.page.fill("#test-to", "operator@example.test")
    op.page.click("#test-announcement")
    expect(op.page.locator(".flash")).to_contain_text("nobody else received it")
    op.shot("announcement-preview")
    op.page.check("#confirm-announcement")
    op.page.click("#send-announcement")
    expect(op.page.locator(".flash")).to_contain_text("Sending to")
    expect(op.page.locator("#announcements")).to_contain_text("Maintenance on Sunday")
    op.context.close()

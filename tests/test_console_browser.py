"""The personal area in a real browser (Playwright driving Debian's chromium).

A new user registers, receives the credentials by mail from a real SMTP server (aiosmtpd) that the
test runs, logs in, creates an instance, links it by scanning the QR code with a sandbox phone,
sends a message and sees it in the journal, invites a viewer who cannot see the token, and logs
out. Screenshots of the main pages go to docs/console/ (shown in docs/console.md).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from console_client import credentials
from harness import CHROMIUM, Server, decode_qr, screenshots
from smtp_catcher import MailCatcher

SHOTS = screenshots("console")

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="chromium is not installed")


@pytest.fixture
def smtp() -> Iterator[MailCatcher]:
    with MailCatcher() as catcher:
        yield catcher


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_new_user_from_registration_to_a_delivered_message(
    make_server: Any, smtp: MailCatcher, browser: Any
) -> None:
    from playwright.sync_api import expect

    srv: Server = make_server(env={"VERDIGRIS_SMTP_HOST": "127.0.0.1", "VERDIGRIS_SMTP_PORT": str(smtp.port)})
    srv.new_phone("79995550001", "Dana (new user's phone)")
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()

    # Registration.
    page.goto(srv.url + "/")
    expect(page).to_have_url(re.compile(r"/console/login"))
    page.click("text=Create an account")
    page.fill("input[name=name]", "Dana Doe")
    page.fill("input[name=email]", "dana@example.test")
    page.fill("input[name=phone]", "+79995550001")
    page.fill("input[name=organisation]", "Doe Bakery")
    page.fill("input[name=username]", "dana")
    page.check("input[name=accept_agreement]")
    page.check("input[name=accept_privacy]")
    shot(page, "register")
    page.click("button[type=submit]")
    expect(page.locator("#registered")).to_contain_text("dana@example.test")

    # The credentials arrive by SMTP; the link in the mail confirms the address.
    username, password, link = credentials(smtp.wait_for("dana@example.test"))
    assert username == "dana"
    page.goto(link)
    expect(page.locator(".flash")).to_contain_text("confirmed")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password + "-typo")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_contain_text("Wrong username or password")
    page.fill("input[name=password]", password)
    shot(page, "login")
    page.click("button[type=submit]")
    expect(page.locator("#logout")).to_be_visible()

    # Create an instance; its page shows a QR code that refreshes itself until linked.
    page.fill("input[name=name]", "Bakery bot")
    page.click("#create-instance")
    expect(page.locator("h1")).to_contain_text("Bakery bot")
    instance_id = int(page.locator("#id-instance").inner_text())
    expect(page.locator("#state")).to_have_text("notAuthorized")
    qr = page.locator("#qr")
    expect(qr).to_be_visible()
    shot(page, "instance-qr")
    src = qr.get_attribute("src")
    assert src and src.startswith("data:image/png;base64,")
    payload = decode_qr(src.split(",", 1)[1])
    r = srv.sandbox("POST", "/phones/79995550001/link", json={"qr": payload})
    assert r.status_code == 200, r.text
    expect(page.locator("#state")).to_have_text("authorized")  # the page noticed by itself
    expect(page.locator("#qr")).to_have_count(0)

    # Reveal the token and use it with the API.
    page.click("#reveal-token")
    expect(page.locator("code#token")).to_have_text(re.compile(r"^[0-9a-f]{50}$"))
    token = page.locator("code#token").inner_text()
    inst = {"idInstance": instance_id, "apiTokenInstance": token}
    assert srv.wire(inst, "getStateInstance").json() == {"stateInstance": "authorized"}

    # Send a message from the page; it appears in the journal, and the phone receives it.
    page.fill("#send-chat", "79990000003")
    page.fill("#send-text", "Fresh bread at 7")
    page.click("#send")
    expect(page.locator(".flash")).to_contain_text("Message queued")
    expect(page.locator("#journal")).to_contain_text("Fresh bread at 7")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = srv.sandbox("GET", "/phones/79990000003/messages").json()
        if any("Fresh bread at 7" in str(m) for m in got):
            break
        time.sleep(0.3)
    else:
        raise AssertionError("the sandbox phone did not receive the message")
    # A message sent through the API shows up in the journal too (the page refreshes it).
    r = srv.wire(
        inst, "sendMessage", verb="POST", json={"chatId": "79990000003@c.us", "message": "Sent by API"}
    )
    assert r.status_code == 200
    expect(page.locator("#journal")).to_contain_text("Sent by API")
    shot(page, "instance")

    # A phone-sized screen.
    mobile = browser.new_context(
        viewport={"width": 390, "height": 844}, storage_state=context.storage_state()
    )
    phone_page = mobile.new_page()
    phone_page.goto(f"{srv.url}/console/instances/{instance_id}")
    expect(phone_page.locator("#state")).to_have_text("authorized")
    width = phone_page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"the page is {width}px wide on a 390px screen"
    phone_page.screenshot(path=str(SHOTS / "instance-phone.png"))
    mobile.close()

    # Invite a viewer.
    page.click("nav >> text=Team")
    page.fill("#invite-email", "vic@example.test")
    page.select_option("#invite-role", "viewer")
    page.click("#invite")
    expect(page.locator(".flash")).to_contain_text("Invitation sent")
    shot(page, "team")
    invite_text = smtp.wait_for("vic@example.test", "invited")
    invite_link = re.search(r"(http\S+/console/invite/\S+)", invite_text)
    assert invite_link

    viewer_context = browser.new_context(viewport={"width": 1100, "height": 900})
    viewer_context.set_default_timeout(30_000)
    viewer = viewer_context.new_page()
    viewer.goto(invite_link.group(1))
    viewer.fill("input[name=username]", "vic")
    viewer.fill("input[name=password]", "Viewer-Pass-2026")
    viewer.check("input[name=accept_agreement]")
    viewer.check("input[name=accept_privacy]")
    viewer.click("button[type=submit]")
    expect(viewer.locator(".flash")).to_contain_text("Welcome to the team")
    viewer.fill("input[name=username]", "vic")
    viewer.fill("input[name=password]", "Viewer-Pass-2026")
    viewer.click("button[type=submit]")
    viewer.click(f"text={instance_id}")
    expect(viewer.locator("#state")).to_have_text("authorized")
    expect(viewer.locator("#journal")).to_contain_text("Fresh bread at 7")  # journals: yes
    expect(viewer.locator("#token-hidden")).to_be_visible()  # tokens: no
    expect(viewer.locator("#reveal-token")).to_have_count(0)
    expect(viewer.locator("#send")).to_have_count(0)
    expect(viewer.locator("#webhook-token-hidden")).to_be_visible()  # nor the webhook's token
    assert token not in viewer.content()
    asked = viewer.request.get(f"{srv.url}/console/instances/{instance_id}/token")
    assert asked.status == 403 and token not in asked.text()
    shot(viewer, "instance-viewer")
    viewer_context.close()

    # The owner's journal shows the team's logins and the viewer's refused token request.
    page.click("nav >> text=Sign-ins")
    events = page.locator("#events")
    expect(events).to_contain_text("member_joined")
    expect(events).to_contain_text("forbidden")
    expect(events).to_contain_text("token_revealed")
    expect(events).to_contain_text("login_failed")
    shot(page, "journal")
    page.click("nav >> text=Account")
    expect(page.locator("#sessions")).to_be_visible()
    shot(page, "account")

    # Log out: the console is closed again.
    page.click("#logout")
    expect(page).to_have_url(re.compile(r"/console/login"))
    expect(page.locator(".flash")).to_contain_text("logged out")
    page.goto(f"{srv.url}/console/instances/{instance_id}")
    expect(page).to_have_url(re.compile(r"/console/login"))
    context.close()


def test_demo_account_in_the_browser(make_server: Any, browser: Any) -> None:
    from playwright.sync_api import expect

    server = make_server()  # a fresh workspace: other tests add instances to the shared one

    page = browser.new_page(viewport={"width": 1100, "height": 700})
    page.set_default_timeout(30_000)
    page.goto(server.url + "/console/login")
    page.fill("input[name=username]", server.demo["console"]["username"])
    page.fill("input[name=password]", server.demo["console"]["password"])
    page.click("button[type=submit]")
    table = page.locator("#instances")
    for inst in server.demo["instances"]:
        expect(table).to_contain_text(str(inst["idInstance"]))
    expect(table.locator(".state-authorized")).to_have_count(2)
    shot(page, "instances")
    page.close()

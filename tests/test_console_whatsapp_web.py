"""The console's Link card for an instance on the WhatsApp Web channel (console/linking.py), over
plain HTTP and in a real browser on a 390 px phone screen, with tests/fake_wa_gateway.py playing
the gateway and WhatsApp behind it.

The card shows the gateway's QR code while the instance is not linked and a newer one after the
gateway rotated it; after the scan it shows ``authorized`` and no QR code and stops refreshing. A
pairing code is shown grouped (XXXX-XXXX) with its expiry and the instruction, never in a URL;
bad input, a refusal and a gateway that is down show an error in the card and change nothing.
A viewer sees none of it; a Cloud API instance has no QR code. Nothing here reaches WhatsApp.
"""

from __future__ import annotations

import html
import itertools
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from console_client import Console, join_team
from fake_wa_gateway import FakeWaGateway
from harness import CHROMIUM, Server, decode_qr, screenshots
from sandbox_kit import wait_until
from test_whatsapp_web import env_for

SHOTS = screenshots("console")
QR_IMG = re.compile(r'<img id="qr"[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
CODE = re.compile(r'id="pairing-code">([A-Z0-9]{4}-[A-Z0-9]{4})<')
_phones = itertools.count(1)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeWaGateway]:
    fake = FakeWaGateway(tmp_path_factory.mktemp("wa")).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def srv(gateway: FakeWaGateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("wacard"), env=env_for(gateway)).start()
    wait_until(lambda: gateway.listener is not None and gateway.listener.connections > 0)
    yield server
    server.stop()
    server.drop_database()


def phone() -> str:
    return f"7999310{next(_phones):04d}"


def owner(srv: Server) -> Console:
    console = Console(srv)
    who = srv.demo["console"]
    assert console.login(who["username"], who["password"]).status_code == 303
    return console


def new_instance(srv: Server, channel: str = "whatsapp_web") -> tuple[int, str]:
    inst = srv.new_instance("--channel", channel)
    return int(inst["idInstance"]), str(inst["idInstance"])


def qr_of(page: str) -> str:
    found = QR_IMG.search(page)
    assert found, page
    return decode_qr(found.group(1))


def text_of(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</', page, re.S)
    return html.unescape(found.group(1)).strip() if found else ""


def test_the_card_shows_the_rotating_qr_code_until_the_scan(srv: Server, gateway: FakeWaGateway) -> None:
    console = owner(srv)
    instance_id, session = new_instance(srv)
    page = console.get(f"/instances/{instance_id}").text
    assert text_of(page, "state") == "notAuthorized" and text_of(page, "state-words") == "Not linked."
    first = qr_of(page)
    assert re.fullmatch(rf"2@fake-ref-{session}-\d+,fake-noise-key,fake-identity-key,fake-adv", first)
    assert "Linked devices" in page and 'hx-trigger="every 3s"' in page
    assert 'id="pairing-form"' in page and 'id="unlink"' not in page and 'id="reboot"' not in page

    # The card refreshes itself: the gateway rotated its QR code, the card shows the new one.
    card = console.get(f"/instances/{instance_id}/link").text
    assert qr_of(card) != first and "hx-trigger" in card
    # After three minutes of refreshes the card stops asking for codes (a page left open does not
    # keep a WhatsApp login going); it still refreshes, and a button shows a new code.
    asked = gateway.requests.count("qr")
    card = console.get(f"/instances/{instance_id}/link?seen=notAuthorized&round=60").text
    assert 'id="qr"' not in card and 'id="qr-again"' in card and "hx-trigger" in card
    assert gateway.requests.count("qr") == asked
    assert 'id="qr"' in console.get(f"/instances/{instance_id}/link?round=59").text

    # The phone scans it: the card says so, shows no QR code and stops refreshing.
    number = phone()
    gateway.scan(session, number, "Shop")
    card = console.get(f"/instances/{instance_id}/link").text
    assert text_of(card, "state") == "authorized" and f"+{number}" in card
    assert text_of(card, "state-words").startswith("Linked")
    assert 'id="qr"' not in card and "hx-trigger" not in card
    # A refresh from a page drawn before the scan reloads that page (its forms follow the state).
    r = console.get(f"/instances/{instance_id}/link?seen=notAuthorized", headers={"HX-Request": "true"})
    assert r.headers.get("hx-refresh") == "true"
    page = console.get(f"/instances/{instance_id}").text
    assert 'id="qr"' not in page and 'id="pairing-form"' not in page
    assert 'id="unlink"' in page and 'id="reboot"' in page


def test_stream_replaced_outdated_and_ban_read_as_sentences_reboot_and_logout(
    srv: Server, gateway: FakeWaGateway
) -> None:
    console = owner(srv)
    instance_id, session = new_instance(srv)
    gateway.scan(session, phone())

    # Another client took the session over: no QR code (the number is still linked), the reason
    # in words, and Reboot takes the session back.
    gateway.stream_replaced(session)
    wait_until(lambda: 'id="state">notAuthorized<' in console.get(f"/instances/{instance_id}/link").text)
    page = console.get(f"/instances/{instance_id}").text
    assert "stream replaced" in text_of(page, "state-note") and "Reboot takes the session back" in page
    assert text_of(page, "state-words").startswith("Not connected: the number is still linked")
    assert 'id="qr"' not in page and 'id="pairing-form"' not in page and 'id="reboot"' in page
    asked = gateway.requests.count("reconnect")
    r = console.post(f"/instances/{instance_id}/reboot")
    assert r.status_code == 303 and r.headers["location"] == f"/console/instances/{instance_id}"
    assert gateway.requests.count("reconnect") == asked + 1
    wait_until(lambda: 'id="state">authorized<' in console.get(f"/instances/{instance_id}/link").text)
    assert 'id="state-note"' not in console.get(f"/instances/{instance_id}/link").text

    # WhatsApp refuses the client version.
    gateway.emit(session, "client_outdated", {})
    wait_until(lambda: "client outdated" in console.get(f"/instances/{instance_id}/link").text)

    # A temporary ban: blocked, for how long, in words.
    gateway.emit(session, "connected", {})
    wait_until(lambda: 'id="state">authorized<' in console.get(f"/instances/{instance_id}/link").text)
    gateway.temporary_ban(session, 7200)
    wait_until(lambda: 'id="state">blocked<' in console.get(f"/instances/{instance_id}/link").text)
    card = console.get(f"/instances/{instance_id}/link").text
    assert text_of(card, "state-words").startswith("Blocked: the network has banned this number")
    assert "for about 2 hours" in text_of(card, "state-note")

    # Unlink from the console: the gateway ends the session; the card offers a QR code again.
    gateway.emit(session, "connected", {})
    wait_until(lambda: 'id="state">authorized<' in console.get(f"/instances/{instance_id}/link").text)
    console.get(f"/instances/{instance_id}")
    assert console.post(f"/instances/{instance_id}/logout").status_code == 303
    assert gateway.session(session).jid == ""
    page = console.get(f"/instances/{instance_id}").text
    assert text_of(page, "state") == "notAuthorized" and qr_of(page).startswith(f"2@fake-ref-{session}-")


def test_pairing_code_is_shown_grouped_with_its_expiry_and_links(srv: Server, gateway: FakeWaGateway) -> None:
    console = owner(srv)
    instance_id, session = new_instance(srv)
    number = phone()
    console.get(f"/instances/{instance_id}")
    spaced = f"+{number[0]} {number[1:4]} {number[4:7]}-{number[7:9]}-{number[9:]}"  # as people type it
    r = console.post(f"/instances/{instance_id}/pairing", {"phone": spaced})
    assert r.status_code == 303 and r.headers["location"] == f"/console/instances/{instance_id}"
    page = console.get(f"/instances/{instance_id}").text
    code = CODE.search(page)
    assert code, page
    assert gateway.session(session).pairing_phone == number
    assert code.group(1).replace("-", "") == gateway.session(session).pairing_code.replace("-", "")
    assert code.group(1) not in r.headers["location"] and code.group(1) not in r.headers.get("set-cookie", "")
    notice = " ".join(
        html.unescape(re.sub(r"<[^>]+>", " ", page[page.index('id="pairing"') :][:1500])).split()
    )
    assert notice.startswith(f'id="pairing"> Pairing code for +{number}: {code.group(1)} Copy')
    assert "Linked devices → Link a device → Link with phone number instead" in notice
    assert "Valid until" in notice
    assert 'id="qr"' in page  # the QR code stays: either way links

    # The phone types the code in: linked; the code is gone.
    gateway.enter_pairing_code(session, code.group(1))
    card = console.get(f"/instances/{instance_id}/link").text
    assert text_of(card, "state") == "authorized" and 'id="qr"' not in card
    page = console.get(f"/instances/{instance_id}").text
    assert 'id="pairing-code"' not in page and f"+{number}" in page


def test_bad_input_a_refusal_and_a_gateway_down_show_an_error_in_the_card(
    srv: Server, gateway: FakeWaGateway, make_server: Any, tmp_path: Path
) -> None:
    console = owner(srv)
    instance_id, session = new_instance(srv)
    asked = gateway.requests.count("pair_phone")

    def refused(phone_text: str) -> str:
        console.get(f"/instances/{instance_id}")
        r = console.post(f"/instances/{instance_id}/pairing", {"phone": phone_text})
        assert r.status_code == 303
        page = console.get(f"/instances/{instance_id}").text
        assert 'id="pairing-code"' not in page
        card = page[page.index('id="link-card"') : page.index("</section>", page.index('id="link-card"'))]
        assert 'id="pairing-error"' in card  # in the card, not at the top of the page
        return text_of(page, "pairing-error")

    for bad in ("12ab", "+7 999", "٧٩٩٩٣١٠٠٠٠١", "7" * 16, ""):
        assert refused(bad).startswith("Phone number: 7 to 15 digits"), bad
    assert gateway.requests.count("pair_phone") == asked  # the gateway was not asked

    gateway.pairing_refusal = "WhatsApp refused the pairing request: rate-overlimit (429)"
    try:
        assert refused("+" + phone()) == "WhatsApp refused the pairing request: rate-overlimit (429)."
    finally:
        gateway.pairing_refusal = None
    # The error shows once; the next page is clean.
    assert 'id="pairing-error"' not in console.get(f"/instances/{instance_id}").text

    # A server whose gateway is down: the card says so in words, and a pairing code is refused.
    down = make_server(
        env={
            "VERDIGRIS_WHATSAPP_WEB_ENABLED": "true",
            "VERDIGRIS_WHATSAPP_WEB_GATEWAY": "false",
            "VERDIGRIS_WHATSAPP_WEB_SOCKET": str(tmp_path / "nobody.sock"),
            "VERDIGRIS_WHATSAPP_WEB_SECRET_FILE": str(tmp_path / "wa.secret"),
        }
    )
    lonely = owner(down)
    other_id, _ = new_instance(down)
    page = lonely.get(f"/instances/{other_id}").text
    assert "gateway is not running right now" in text_of(page, "state-note")
    assert 'id="qr"' not in page and "No QR code right now" in page
    lonely.post(f"/instances/{other_id}/pairing", {"phone": "+" + phone()})
    error = text_of(lonely.get(f"/instances/{other_id}").text, "pairing-error")
    assert error.startswith("Linking is not possible right now: the WhatsApp Web gateway is not connected")


def test_a_viewer_sees_the_state_but_no_qr_code_or_pairing_code(srv: Server, gateway: FakeWaGateway) -> None:
    console = owner(srv)
    instance_id, session = new_instance(srv)
    console.get(f"/instances/{instance_id}")
    assert console.post(f"/instances/{instance_id}/pairing", {"phone": "+" + phone()}).status_code == 303
    code = CODE.search(console.get(f"/instances/{instance_id}").text)
    assert code
    asked = gateway.requests.count("qr")

    viewer, _ = join_team(srv, console, "viewer")
    page = viewer.get(f"/instances/{instance_id}").text
    assert text_of(page, "state") == "notAuthorized" and "A developer, admin or the owner can link it" in page
    for hidden in ('id="qr"', 'id="pairing-form"', 'id="pairing-code"', code.group(1), 'id="unlink"'):
        assert hidden not in page, hidden
    card = viewer.get(f"/instances/{instance_id}/link").text
    assert 'id="state">notAuthorized<' in card and 'id="qr"' not in card and code.group(1) not in card
    assert gateway.requests.count("qr") == asked  # nobody asked the gateway for a code on their behalf
    viewer.get(f"/instances/{instance_id}")
    assert viewer.post(f"/instances/{instance_id}/pairing", {"phone": "+" + phone()}).status_code == 403
    assert viewer.post(f"/instances/{instance_id}/reboot").status_code == 403
    assert viewer.post(f"/instances/{instance_id}/logout").status_code == 403


def test_a_cloud_api_instance_has_no_qr_code(srv: Server) -> None:
    console = owner(srv)
    instance_id, _ = new_instance(srv, "whatsapp_cloud")
    page = console.get(f"/instances/{instance_id}").text
    assert text_of(page, "state") == "notAuthorized" and text_of(page, "state-words") == "Not connected."
    assert "not linked by QR code or pairing code" in page and 'id="cloud-form"' in page
    for absent in ('id="qr"', 'id="pairing-form"', 'id="qr-waiting"', 'id="link-problem"'):
        assert absent not in page, absent
    assert 'id="qr"' not in console.get(f"/instances/{instance_id}/link").text
    console.get(f"/instances/{instance_id}")
    console.post(f"/instances/{instance_id}/pairing", {"phone": "+" + phone()})
    error = text_of(console.get(f"/instances/{instance_id}").text, "pairing-error")
    assert error == "This instance is not linked by pairing code."


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="chromium is not installed")
def test_the_card_on_a_phone_screen(srv: Server, gateway: FakeWaGateway, browser: Any) -> None:
    """At 390 px: the card renders, its QR code is replaced as the gateway rotates it, a pairing
    code shows, the scan turns it to authorized; nothing is ever wider than the screen."""
    instance_id, session = new_instance(srv)
    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.set_default_timeout(30_000)
    page = context.new_page()

    def fits() -> None:
        width, view = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width <= view, f"{page.url} is {width}px wide on a {view}px screen"
        card = page.locator("#link-card").bounding_box()
        assert card is not None and card["x"] >= 0 and card["x"] + card["width"] <= view

    page.goto(srv.url + "/console/login")
    page.fill("input[name=username]", srv.demo["console"]["username"])
    page.fill("input[name=password]", srv.demo["console"]["password"])
    page.click("button[type=submit]")
    expect(page.locator("#logout")).to_be_attached()
    page.goto(f"{srv.url}/console/instances/{instance_id}")
    expect(page.locator("#state")).to_have_text("notAuthorized")
    qr = page.locator("#qr")
    expect(qr).to_be_visible()
    first = qr.get_attribute("src")
    assert first and decode_qr(first.split(",", 1)[1]).startswith(f"2@fake-ref-{session}-")
    fits()

    # The card refreshes by itself and shows the gateway's next code.
    expect(qr).not_to_have_attribute("src", first)
    fits()

    # A pairing code: grouped, with the instruction; the page's address carries no code.
    number = phone()
    page.fill("#pairing-phone", "+" + number)
    page.click("#get-pairing-code")
    code = page.locator("#pairing-code")
    expect(code).to_have_text(re.compile(r"^[0-9A-Z]{4}-[0-9A-Z]{4}$"))
    assert code.inner_text().replace("-", "") not in page.url
    expect(page.locator("#pairing")).to_contain_text("Link with phone number instead")
    fits()
    page.locator("#link-card").screenshot(path=str(SHOTS / "instance-whatsapp-web-phone.png"))

    # The phone types it in: the page notices by itself; no QR code, no refreshing.
    gateway.enter_pairing_code(session, code.inner_text())
    expect(page.locator("#state")).to_have_text("authorized")
    expect(page.locator("#qr")).to_have_count(0)
    expect(page.locator("#state-words")).to_contain_text("Linked")
    expect(page.locator("#unlink")).to_be_visible()
    assert page.locator("#link[hx-trigger]").count() == 0
    fits()
    context.close()

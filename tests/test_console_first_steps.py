"""Issue 13 over plain HTTP: what a new user meets in the console, one fix per test.

The browser walk is tests/test_console_journey_browser.py; these check each fix's page answers.
"""

from __future__ import annotations

import html
import re
import time
import uuid
from typing import Any

from console_client import Console, credentials, new_user, register
from harness import Server, free_port


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def create_instance(console: Console, **form: str) -> int:
    console.get("/")
    r = console.post("/instances", {"name": "bot", **form})
    assert r.status_code == 303, r.text
    return int(r.headers["location"].rsplit("/", 1)[1])


def shown(page: str, kind: str) -> str:
    """The text of the page's flash ("flash") or error ("error") box, or ""."""
    found = re.search(rf'class="{kind}"[^>]*>([^<]*)<', page)
    return html.unescape(found.group(1)) if found else ""


def test_a_refusal_after_a_redirect_looks_like_an_error(server: Server) -> None:
    console, _ = new_user(server, unique("err"))
    instance_id = create_instance(console)
    console.get(f"/instances/{instance_id}")
    r = console.post(f"/instances/{instance_id}/send", {"chat": "not a number", "message": "hi"})
    assert r.status_code == 303
    page = console.get(f"/instances/{instance_id}").text
    assert shown(page, "error").startswith("Not sent:") and shown(page, "flash") == ""
    r = console.post(f"/instances/{instance_id}/send", {"chat": "79990000003", "message": "hi"})
    page = console.get(f"/instances/{instance_id}").text
    assert shown(page, "flash") == "Message queued." and shown(page, "error") == ""


def test_the_development_mailbox_shows_the_sign_up_mail_until_smtp_is_set(
    server: Server, make_server: Any
) -> None:
    console = Console(server)
    username = unique("mb")
    address = f"{username}@example.test"
    r = register(console, username, address)
    assert r.status_code == 200
    link = re.search(r'id="open-mailbox" href="/console(/mailbox\?address=[^"]+)"', r.text)
    assert link and "Development convenience" in r.text
    page = console.get(html.unescape(link.group(1)))
    assert page.status_code == 200 and "Development convenience" in page.text
    # The mail is decoded (not quoted-printable), with its links clickable.
    mail = re.search(r'<pre class="mail-body">(.*?)</pre>', page.text, re.S)
    assert mail
    text = html.unescape(re.sub(r"<[^>]+>", "", mail.group(1)))
    name, password, verify = credentials(text)
    assert name == username and f'href="{verify}"' in html.unescape(mail.group(1))
    # Another address's mailbox is empty; a malformed address is an error.
    assert "0 mails to" in console.get("/mailbox?address=nobody@example.test").text
    bad = console.get("/mailbox?address=no-at-sign")
    assert bad.status_code == 400 and shown(bad.text, "error") == "That is not an e-mail address."

    # With an SMTP server configured there is no mailbox and no link to it.
    smtp_srv: Server = make_server(
        env={"VERDIGRIS_SMTP_HOST": "127.0.0.1", "VERDIGRIS_SMTP_PORT": str(free_port())}
    )
    other = Console(smtp_srv)
    r = register(other, "smtpuser", "smtpuser@example.test")
    assert r.status_code == 200 and "mailbox" not in r.text
    assert other.get("/mailbox?address=smtpuser@example.test").status_code == 404


def test_creation_asks_whether_to_receive_notifications(server: Server) -> None:
    console, _ = new_user(server, unique("nt"))
    form = console.get("/").text
    assert 'name="notifications" value="yes"' in form and 'name="notifications" value="no"' in form
    flags = ("incomingWebhook", "outgoingWebhook", "outgoingMessageWebhook", "outgoingAPIMessageWebhook")
    for choice in ("yes", "no"):
        instance_id = create_instance(console, notifications=choice)
        page = console.get(f"/instances/{instance_id}").text
        for flag in flags:
            chosen = re.search(
                rf'data-setting="{flag}">([^<]*)<span>{flag}</span>\s*<select[^>]*>.*?<option value="(yes|no)" selected',
                page,
                re.S,
            )
            assert chosen and chosen.group(2) == choice, (flag, choice)
            assert chosen.group(1).strip().startswith("Notify:")  # plain words beside the API name
    console.get("/")
    r = console.post("/instances", {"name": "x", "notifications": "maybe"})
    assert r.status_code == 303
    assert shown(console.get("/").text, "error") == "Receive notifications: choose yes or no."


def phone_number() -> str:
    return "7995" + str(uuid.uuid4().int)[:7]


def test_sandbox_phones_link_and_chat_in_the_console(server: Server) -> None:
    console, _ = new_user(server, unique("sp"))
    instance_id = create_instance(console)
    page = console.get(f"/instances/{instance_id}").text
    assert 'id="sandbox"' in page
    shop, customer = phone_number(), phone_number()

    def add(number: str, name: str) -> str:
        console.get(f"/instances/{instance_id}")
        r = console.post(f"/instances/{instance_id}/sandbox/phones", {"number": number, "name": name})
        assert r.status_code == 303
        return console.get(f"/instances/{instance_id}").text

    # Bad numbers and numbers that are someone else's sandbox phone are refused, changing nothing.
    assert shown(add("12ab", ""), "error").startswith("Phone number: 7 to 15 digits")
    taken = add(server.demo["sandbox"]["phones"][0], "")
    assert "someone else" in shown(taken, "error") and 'id="sandbox-phones"' not in taken
    page = add(shop, "Shop phone")
    assert shown(page, "flash") == f"Sandbox phone +{shop} is ready." and f'data-phone="{shop}"' in page

    # A pairing code for a number without a sandbox phone says so.
    r = console.post(f"/instances/{instance_id}/pairing", {"phone": "+" + phone_number()})
    assert "There is no sandbox phone" in shown(console.get(f"/instances/{instance_id}").text, "error")
    # With one: the code shows on the page (not in the URL) and the phone enters it.
    r = console.post(f"/instances/{instance_id}/pairing", {"phone": "+" + shop})
    assert r.headers["location"] == f"/console/instances/{instance_id}"
    page = console.get(f"/instances/{instance_id}").text
    code = re.search(r'id="pairing-code">([A-Z0-9]{4}-[A-Z0-9]{4})<', page)
    assert code
    r = console.post(f"/instances/{instance_id}/sandbox/pair", {"phone": shop, "code": "AAAA-AAAA"})
    assert "pairing code is wrong" in shown(console.get(f"/instances/{instance_id}").text, "error")
    r = console.post(f"/instances/{instance_id}/sandbox/pair", {"phone": shop, "code": code.group(1)})
    page = console.get(f"/instances/{instance_id}").text
    assert 'id="state">authorized<' in page and f"+{shop}" in page

    # Unlink, and link again by "scanning" the QR code with the phone.
    console.post(f"/instances/{instance_id}/logout")
    console.get(f"/instances/{instance_id}")
    r = console.post(f"/instances/{instance_id}/sandbox/scan", {"phone": shop})
    assert (
        shown(console.get(f"/instances/{instance_id}").text, "flash")
        == f"Linked: +{shop} scanned the QR code."
    )

    # A customer's phone writes to the instance; the instance answers; the phone reads it.
    add(customer, "Customer")
    screen = console.get(f"/instances/{instance_id}/sandbox/{customer}")
    assert screen.status_code == 200 and "No messages with this instance yet" in screen.text
    r = console.post(f"/instances/{instance_id}/sandbox/{customer}/send", {"message": "Do you have rye?"})
    assert r.status_code == 303
    assert "Do you have rye?" in console.get(f"/instances/{instance_id}/activity").text
    console.get(f"/instances/{instance_id}")
    console.post(f"/instances/{instance_id}/send", {"chat": customer, "message": "Yes, until 6 pm"})
    for _ in range(150):
        chat = console.get(f"/instances/{instance_id}/sandbox/{customer}").text
        if "Yes, until 6 pm" in chat:
            break
        time.sleep(0.2)
    assert re.search(r'data-direction="incoming">Yes, until 6 pm', chat), chat
    assert re.search(r'data-direction="outgoing">Do you have rye\\?', chat)
    r = console.post(f"/instances/{instance_id}/sandbox/{customer}/send", {"message": "  "})
    assert "Not sent" in shown(console.get(f"/instances/{instance_id}/sandbox/{customer}").text, "error")

    # Another team sees neither these phones nor their chats.
    other, _ = new_user(server, unique("sq"))
    own = create_instance(other)
    assert other.get(f"/instances/{own}/sandbox/{customer}").status_code == 404
    assert other.get(f"/instances/{instance_id}/sandbox/{customer}").status_code == 404
    other.get(f"/instances/{own}")
    assert other.post(f"/instances/{own}/sandbox/scan", {"phone": shop}).status_code == 404
    assert f"+{shop}" not in other.get(f"/instances/{own}").text


def test_the_operator_lands_on_an_overview(server: Server) -> None:
    op = Console(server)
    assert (
        op.login(server.demo["operator"]["username"], server.demo["operator"]["password"]).status_code == 303
    )
    page = op.get("/").text
    for part in ("overview-accounts", "overview-instances", "overview-revenue", "waiting-invoices"):
        assert f'id="{part}"' in page
    authorized = re.search(r'data-state="authorized"><span[^>]*>authorized</span> (\d+)<', page)
    assert authorized and int(authorized.group(1)) >= 2  # the demo's two linked instances
    waiting = re.search(r'id="waiting-invoices"><a[^>]*>(\d+) invoices?</a>', page)
    assert waiting
    lee, _ = new_user(server, unique("ov"))
    instance_id = create_instance(lee)
    lee.get("/billing")
    r = lee.post("/billing/buy", {"instance": str(instance_id), "tariff": "business", "periods": "1"})
    assert r.status_code == 303, r.text
    again = re.search(r'id="waiting-invoices"><a[^>]*>(\d+) invoices?</a>', op.get("/").text)
    assert again and int(again.group(1)) == int(waiting.group(1)) + 1
    # A licensee's first page is the instance list, never the overview.
    assert 'id="overview-accounts"' not in lee.get("/").text
    assert lee.get("/instances").status_code == 200


def test_unknown_console_urls_answer_the_styled_404(server: Server) -> None:
    console, _ = new_user(server, unique("nf"))
    for client in (console, Console(server)):
        r = client.get("/no/such/page")
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
        assert "<h1>Not found</h1>" in r.text and "detail" not in r.text
    assert 'id="logout"' in console.get("/no/such/page").text  # the menu stays for a logged-in user
    assert (
        server.wire({"idInstance": 1, "apiTokenInstance": "x"}, "nope")
        .headers["content-type"]
        .startswith("application/json")
    )  # the API keeps its JSON


def test_after_a_session_ends_a_refreshing_panel_returns_to_its_page(server: Server) -> None:
    stranger = Console(server)
    r = stranger.http.get(
        "/console/instances/1234/link",
        headers={"HX-Request": "true", "HX-Current-URL": f"{server.url}/console/instances/1234"},
    )
    assert r.status_code == 204
    assert r.headers["hx-redirect"] == "/console/login?next=/console/instances/1234"
    # Another site's address is not followed.
    r = stranger.http.get(
        "/console/instances/1234/link",
        headers={"HX-Request": "true", "HX-Current-URL": "https://elsewhere.example/console/x"},
    )
    assert r.headers["hx-redirect"] == "/console/login?next=/console/"
    # A plain page keeps its own path.
    r = stranger.http.get("/console/team")
    assert r.headers["location"] == "/console/login?next=/console/team"


def test_counts_and_durations_read_naturally(server: Server) -> None:
    console, _ = new_user(server, unique("pl"))
    page = console.get("/account").text
    assert "deleted after 30 days." in page and "30.0" not in page
    instance_id = create_instance(console)
    console.get(f"/instances/{instance_id}")
    console.post(f"/instances/{instance_id}/send", {"chat": "79990000003", "message": "one"})
    console.get(f"/instances/{instance_id}")
    console.post(f"/instances/{instance_id}/queue/clear")
    assert shown(console.get(f"/instances/{instance_id}").text, "flash") == "1 queued message withdrawn."


def test_the_owner_sees_the_qr_code_at_once_after_creating_an_instance(server: Server) -> None:
    console, _ = new_user(server, unique("qr"))
    console.get("/")
    r = console.post("/instances", {"name": "fresh"})
    page = console.get(r.headers["location"].removeprefix("/console")).text
    assert 'id="qr"' in page and "A developer, admin or the owner can link it" not in page


def test_the_message_journal_lists_chats_shows_a_history_and_searches(server: Server) -> None:
    demo = Console(server)
    assert demo.login("demo", server.demo["console"]["password"]).status_code == 303
    inst = server.instance(0)
    instance_id = inst["idInstance"]
    word = unique("rye")
    sent = server.wire(
        inst,
        "sendMessage",
        verb="POST",
        json={"chatId": "79990000003@c.us", "message": f"Fresh {word} today"},
    )
    assert sent.status_code == 200, sent.text

    # The menu names the sign-in log as what it is; the instance links its message journal.
    home = demo.get("/").text
    assert ">Sign-ins</a>" in home and ">Journal</a>" not in home
    assert f'href="/console/instances/{instance_id}/messages"' in demo.get(f"/instances/{instance_id}").text

    chats_page = demo.get(f"/instances/{instance_id}/messages").text
    assert 'data-chat="79990000003@c.us"' in chats_page
    history = demo.get(f"/instances/{instance_id}/messages/79990000003@c.us").text
    assert f"Fresh {word} today" in history and 'data-direction="out"' in history

    found = demo.get(f"/instances/{instance_id}/messages", params={"q": word.upper()}).text
    results = found.split('id="search-results"', 1)[1].split("</section>", 1)[0]
    assert "1 message with" in results and f"Fresh {word} today" in results
    nothing = demo.get(f"/instances/{instance_id}/messages", params={"q": "%_" + word}).text
    assert "0 messages with" in nothing and "Nothing found." in nothing

    # Another tenant's journal is a 404, like any instance of theirs; a malformed chat id too.
    other, _ = new_user(server, unique("jr"))
    assert other.get(f"/instances/{instance_id}/messages").status_code == 404
    assert other.get(f"/instances/{instance_id}/messages/79990000003@c.us").status_code == 404
    assert demo.get(f"/instances/{instance_id}/messages/not-a-chat").status_code == 404

"""The WhatsApp Cloud API channel end to end: a real server, the official SDK and bot library on the
instance's side, and tests/fake_graph.py playing Meta (its Graph API and its signed webhooks).

An instance is connected in the console with Meta credentials; then SDK calls become Graph API
requests with the documented bodies, and webhook payloads become the GREEN-API notifications the
SDK and bots read. Nothing here reaches the internet: the fake follows the published contract.
"""

from __future__ import annotations

import hashlib
import html
import itertools
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from console_client import Console
from fake_graph import FakeGraph, Number, customer_message, envelope, graph_error, post_webhook, status_update
from harness import CHROMIUM, Server, check_contract, drain, screenshots, wait_for
from sandbox_kit import wait_until

SECRET = "app-secret-1"
SHOTS = screenshots("console")
_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph().start()
    yield fake
    fake.stop()


def cloud_env(graph: FakeGraph, **more: str) -> dict[str, str]:
    return {
        "VERDIGRIS_CLOUD_GRAPH_URL": graph.url,
        **more,
    }


@pytest.fixture(scope="module")
def srv(graph: FakeGraph, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("cloud"), env=cloud_env(graph)).start()
    yield server
    server.stop()
    server.drop_database()


def connect(
    srv: Server, graph: FakeGraph, *, token: str | None = None
) -> tuple[dict[str, Any], Number, Console]:
    """A new instance of the demo licensee, connected in the console to a new business number."""
    n = next(_numbers)
    number = graph.add_number(
        f"10654035224{n:04d}", f"+1 555-01{n:02d}", f"Shop {n}", token or f"EAAG-token-{n}"
    )
    inst = srv.new_instance()
    console = Console(srv)
    console.login("demo", srv.demo["console"]["password"])
    console.get(f"/instances/{inst['idInstance']}")
    r = console.post(
        f"/instances/{inst['idInstance']}/cloud",
        {
            "phone_number_id": number.phone_number_id,
            "access_token": number.token,
            "app_secret": SECRET,
            "verify_token": f"verify-{n}",
        },
    )
    assert r.status_code == 303, r.text
    api = srv.api(inst)
    # Message notifications are on (the CLI's default); state changes too.
    assert api.account.setSettings({"stateWebhook": "yes"}).code == 200
    drain(api, timeout=1)
    graph.skip_sent()
    return inst, number, console


def digits(display: str) -> str:
    return "".join(ch for ch in display if ch.isdigit())


def test_connect_send_statuses_receive_reply_and_read(srv: Server, graph: FakeGraph) -> None:
    inst, number, console = connect(srv, graph)
    api = srv.api(inst)
    state = api.account.getStateInstance()
    assert state.data == {"stateInstance": "authorized"}
    assert api.account.getSettings().data["wid"] == f"{digits(number.display)}@c.us"
    page = console.get(f"/instances/{inst['idInstance']}").text
    assert f"{srv.url}/channels/whatsapp-cloud/webhook" in page and number.display in page

    # SDK → Graph API: the documented text body, to the customer's digits.
    sent = api.sending.sendMessage("15550001111@c.us", "Your order has shipped: https://example.com/t/1")
    assert sent.code == 200
    body = graph.next_sent()
    assert body["messaging_product"] == "whatsapp" and body["to"] == "15550001111" and body["type"] == "text"
    assert body["text"] == {"body": "Your order has shipped: https://example.com/t/1", "preview_url": True}
    # As on the sandbox: the API message's echo first, then its status.
    echo = wait_for(api, lambda b: b["typeWebhook"] != "stateInstanceChanged")
    sent_status = wait_for(api, lambda b: b["typeWebhook"] != "stateInstanceChanged")
    assert (echo["typeWebhook"], echo["idMessage"]) == ("outgoingAPIMessageReceived", sent.data["idMessage"])
    assert echo["senderData"]["chatId"] == "15550001111@c.us"
    assert (sent_status["typeWebhook"], sent_status["status"]) == ("outgoingMessageStatus", "sent")
    assert sent_status["idMessage"] == sent.data["idMessage"]

    # Meta's status webhooks → outgoingMessageStatus delivered, read (for our idMessage, not the wamid).
    wamid = body["_wamid"]
    for status in ("delivered", "read"):
        assert (
            post_webhook(
                srv.url, envelope(number, status_update(wamid, "15550001111", status)), SECRET
            ).status_code
            == 200
        )
        got = wait_for(api, lambda b: b["typeWebhook"] == "outgoingMessageStatus")
        assert (got["idMessage"], got["status"]) == (sent.data["idMessage"], status)
    # A late "delivered" after "read" changes nothing (statuses only go forward).
    post_webhook(srv.url, envelope(number, status_update(wamid, "15550001111", "delivered")), SECRET)
    assert api.journals.getMessage("15550001111@c.us", sent.data["idMessage"]).data["statusMessage"] == "read"

    # A customer replies, quoting the business's message → quotedMessage naming our idMessage.
    reply_wamid, value = customer_message(
        "15550001111",
        "Ann Customer",
        "text",
        {"body": "Thanks! When?"},
        context={"from": digits(number.display), "id": wamid},
    )
    assert post_webhook(srv.url, envelope(number, value), SECRET).status_code == 200
    incoming = wait_for(api, lambda b: b["typeWebhook"] == "incomingMessageReceived")
    assert incoming["senderData"]["chatId"] == "15550001111@c.us"
    assert incoming["senderData"]["senderName"] == "Ann Customer"
    assert incoming["messageData"]["typeMessage"] == "quotedMessage"
    assert incoming["messageData"]["extendedTextMessageData"]["text"] == "Thanks! When?"
    assert incoming["messageData"]["extendedTextMessageData"]["stanzaId"] == sent.data["idMessage"]
    # Meta sends the same payload again: one message, one notification.
    post_webhook(srv.url, envelope(number, value), SECRET)
    history = api.journals.getChatHistory("15550001111@c.us", 10).data
    assert [m["textMessage"] for m in history if m["type"] == "incoming"] == ["Thanks! When?"]

    # The business reads the chat → Meta is told, with the customer's wamid.
    reads = len(graph.reads)
    assert api.marking.readChat("15550001111@c.us").data == {"setRead": True}
    assert graph.wait_reads(reads + 1)[-1] == reply_wamid

    # And answers quoting the customer: the Graph API body carries the customer's wamid as context.
    answer = api.sending.sendMessage("15550001111@c.us", "Tomorrow.", quotedMessageId=incoming["idMessage"])
    assert answer.code == 200
    assert graph.next_sent()["context"] == {"message_id": reply_wamid}


def test_files_both_ways(srv: Server, graph: FakeGraph, tmp_path: Path) -> None:
    inst, number, _ = connect(srv, graph)
    api = srv.api(inst)
    picture = tmp_path / "receipt.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40)
    sent = api.sending.sendFileByUpload("15550002222@c.us", str(picture), "receipt.png", "Your receipt")
    assert sent.code == 200, sent.data
    body = graph.next_sent()
    assert body["type"] == "image" and body["image"]["caption"] == "Your receipt"
    uploaded = graph.uploads[body["image"]["id"]]
    assert uploaded["data"] == picture.read_bytes() and uploaded["type"] == "image/png"

    # A document from a customer: downloaded from Meta into this server; its link serves the bytes.
    pdf = b"%PDF-1.4\n" + b"invoice " * 500
    media_id = graph.add_media(pdf, "application/pdf")
    _, value = customer_message(
        "15550002222",
        "Bob",
        "document",
        {
            "id": media_id,
            "mime_type": "application/pdf",
            "sha256": hashlib.sha256(pdf).hexdigest(),
            "filename": "invoice 7.pdf",
            "caption": "as asked",
        },
    )
    assert post_webhook(srv.url, envelope(number, value), SECRET).status_code == 200
    got = wait_for(api, lambda b: b["typeWebhook"] == "incomingMessageReceived")
    data = got["messageData"]
    assert data["typeMessage"] == "documentMessage"
    assert data["fileMessageData"]["fileName"] == "invoice 7.pdf"
    assert data["fileMessageData"]["caption"] == "as asked"
    assert httpx.get(data["fileMessageData"]["downloadUrl"], timeout=30).content == pdf


def test_interactive_buttons_templates_and_the_answer(srv: Server, graph: FakeGraph) -> None:
    inst, number, _ = connect(srv, graph)
    api = srv.api(inst)
    r = srv.wire(
        inst,
        "sendInteractiveButtonsReply",
        verb="POST",
        json={
            "chatId": "15550003333@c.us",
            "header": "Delivery",
            "body": "When shall we come?",
            "footer": "Shop",
            "buttons": [
                {"buttonId": "am", "buttonText": "Morning"},
                {"buttonId": "pm", "buttonText": "Afternoon"},
            ],
        },
    )
    assert r.status_code == 200, r.text
    body = graph.next_sent()
    assert body["type"] == "interactive"
    assert body["interactive"] == {
        "type": "button",
        "header": {"type": "text", "text": "Delivery"},
        "body": {"text": "When shall we come?"},
        "footer": {"text": "Shop"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "am", "title": "Morning"}},
                {"type": "reply", "reply": {"id": "pm", "title": "Afternoon"}},
            ]
        },
    }
    _, value = customer_message(
        "15550003333",
        "Cy",
        "interactive",
        {"type": "button_reply", "button_reply": {"id": "pm", "title": "Afternoon"}},
        context={"from": digits(number.display), "id": body["_wamid"]},
    )
    post_webhook(srv.url, envelope(number, value), SECRET)
    press = wait_for(api, lambda b: b["typeWebhook"] == "incomingMessageReceived")
    assert press["messageData"]["typeMessage"] == "interactiveButtonsResponse"
    data = press["messageData"]["interactiveButtonsResponse"]
    assert (data["selectedId"], data["selectedDisplayText"], data["stanzaId"]) == (
        "pm",
        "Afternoon",
        r.json()["idMessage"],
    )

    # A template (the only kind Meta takes outside the 24-hour window), with its parameters.
    r = srv.wire(
        inst,
        "sendTemplate",
        verb="POST",
        json={
            "chatId": "15550003333@c.us",
            "namespace": "shop",
            "name": "order_update",
            "languageCode": "en_US",
            "params": [{"default": "Cy"}, {"default": "#1042"}],
        },
    )
    assert r.status_code == 200, r.text
    body = graph.next_sent()
    assert body["type"] == "template"
    assert body["template"] == {
        "name": "order_update",
        "language": {"code": "en_US"},
        "components": [
            {
                "type": "body",
                "parameters": [{"type": "text", "text": "Cy"}, {"type": "text", "text": "#1042"}],
            }
        ],
    }


def test_what_the_cloud_api_cannot_do_is_refused_clearly(srv: Server, graph: FakeGraph) -> None:
    inst, _, _ = connect(srv, graph)
    before = len(graph.sent)
    for method, verb, payload in (
        ("createGroup", "POST", {"groupName": "x", "chatIds": ["15550004444@c.us"]}),
        ("checkWhatsapp", "POST", {"phoneNumber": 15550004444}),
        ("qr", "GET", None),
        (
            "sendPoll",
            "POST",
            {
                "chatId": "15550004444@c.us",
                "message": "?",
                "options": [{"optionName": "a"}, {"optionName": "b"}],
            },
        ),
    ):
        r = srv.wire(inst, method, verb=verb, json=payload)
        assert r.status_code == 501, (method, r.text)
        assert "not available for this instance" in r.json()["message"]
    long_text = srv.wire(
        inst, "sendMessage", verb="POST", json={"chatId": "15550004444@c.us", "message": "x" * 5000}
    )
    assert long_text.status_code == 400
    assert "at most 4096" in long_text.json()["message"]
    group = srv.wire(
        inst, "sendMessage", verb="POST", json={"chatId": "120363043968066561@g.us", "message": "hi"}
    )
    assert group.status_code == 400 and "personal chats" in group.json()["message"]
    assert srv.wire(inst, "showMessagesQueue").json() == []
    time.sleep(1)
    assert len(graph.sent) == before


def test_meta_refusals_and_retries(srv: Server, graph: FakeGraph) -> None:
    inst, number, console = connect(srv, graph)
    api = srv.api(inst)
    # Refused at once for this recipient → failed, with Meta's code and text.
    graph.send_answers.append(
        graph_error(400, 131026, "(#131026) Message undeliverable", "the recipient is not a WhatsApp user")
    )
    first = api.sending.sendMessage("15550005555@c.us", "hello")
    failed = wait_for(api, lambda b: b["typeWebhook"] == "outgoingMessageStatus")
    assert (failed["idMessage"], failed["status"]) == (first.data["idMessage"], "failed")
    assert "131026" in failed["description"] and "not a WhatsApp user" in failed["description"]

    # Throughput limit once → tried again, then sent.
    attempts = graph.attempts
    graph.send_answers.append(graph_error(400, 130429, "(#130429) Rate limit hit"))
    second = api.sending.sendMessage("15550005555@c.us", "again")
    sent = wait_for(api, lambda b: b["typeWebhook"] == "outgoingMessageStatus", timeout=30)
    assert (sent["idMessage"], sent["status"]) == (second.data["idMessage"], "sent")
    assert graph.attempts == attempts + 2
    assert graph.next_sent()["text"]["body"] == "again"

    # Accepted, then failed later by webhook (the 24-hour window was closed).
    third = api.sending.sendMessage("15550005555@c.us", "late")
    wait_for(api, lambda b: b["typeWebhook"] == "outgoingMessageStatus" and b["status"] == "sent")
    wamid = graph.next_sent()["_wamid"]
    error = {
        "code": 131047,
        "title": "Re-engagement message",
        "error_data": {"details": "more than 24 hours have passed"},
    }
    post_webhook(srv.url, envelope(number, status_update(wamid, "15550005555", "failed", [error])), SECRET)
    late = wait_for(api, lambda b: b["typeWebhook"] == "outgoingMessageStatus")
    assert (late["idMessage"], late["status"]) == (third.data["idMessage"], "failed")
    assert "131047" in late["description"]

    # A proxy's HTML error page instead of Meta's answer: tried again, the instance stays connected.
    graph.send_answers.append((502, "<html><body>Bad Gateway</body></html>"))
    proxied = api.sending.sendMessage("15550005555@c.us", "through a proxy")
    out = wait_for(api, lambda b: b["typeWebhook"] == "outgoingMessageStatus")
    assert (out["idMessage"], out["status"]) == (proxied.data["idMessage"], "sent")
    assert graph.next_sent()["text"]["body"] == "through a proxy"
    assert api.account.getStateInstance().data == {"stateInstance": "authorized"}

    # The token expires: the message waits in the queue and the instance is not authorized...
    number.token = "EAAG-renewed"
    waiting = api.sending.sendMessage("15550005555@c.us", "kept")
    state = wait_for(api, lambda b: b["typeWebhook"] == "stateInstanceChanged")
    assert state["stateInstance"] == "notAuthorized"
    assert [m["messageID"] for m in api.queues.showMessagesQueue().data] == [waiting.data["idMessage"]]
    assert "190" in console.get(f"/instances/{inst['idInstance']}").text
    # ... until it is connected with the renewed token: then the kept message goes out.
    r = console.post(
        f"/instances/{inst['idInstance']}/cloud",
        {
            "phone_number_id": number.phone_number_id,
            "access_token": "EAAG-renewed",
            "app_secret": SECRET,
            "verify_token": "v",
        },
    )
    assert r.status_code == 303
    out = wait_for(api, lambda b: b["typeWebhook"] == "outgoingMessageStatus")
    assert (out["idMessage"], out["status"]) == (waiting.data["idMessage"], "sent")


def test_webhook_verification_and_signatures(srv: Server, graph: FakeGraph) -> None:
    inst, number, console = connect(srv, graph)
    api = srv.api(inst)
    url = f"{srv.url}/channels/whatsapp-cloud/webhook"
    n = number.phone_number_id[-4:].lstrip("0")
    ok = httpx.get(
        url,
        params={"hub.mode": "subscribe", "hub.verify_token": f"verify-{n}", "hub.challenge": "1158201444"},
    )
    assert (ok.status_code, ok.text) == (200, "1158201444")
    for params in (
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": f"verify-{n}", "hub.challenge": "1"},
    ):
        assert httpx.get(url, params=params).status_code == 403

    _, value = customer_message("15550006666", "Eve", "text", {"body": "forged"})
    payload = envelope(number, value)
    assert post_webhook(srv.url, payload, SECRET, signature="").status_code == 401
    assert post_webhook(srv.url, payload, "not-the-secret").status_code == 401
    assert post_webhook(srv.url, b"{not json", SECRET).status_code == 400
    for odd in ("sha256=zz", "sha1=" + "0" * 40, "sha256=" + "0" * 63):
        assert post_webhook(srv.url, payload, SECRET, signature=odd).status_code == 401
    raw = httpx.post(
        f"{srv.url}/channels/whatsapp-cloud/webhook",
        content=b"{}",
        headers=[(b"X-Hub-Signature-256", "sha256=\u00e9".encode("latin-1") + b"0" * 63)],
    )
    assert raw.status_code == 401
    many = {
        "object": "whatsapp_business_account",
        "entry": [envelope(Number(str(n), "+1", "x", "t"), {})["entry"][0] for n in range(100, 130)],
    }
    assert post_webhook(srv.url, many, SECRET).status_code == 413
    # A number nobody connected: accepted (Meta must not retry it) and left out.
    stranger = Number("999000111", "+1 555-9999", "x", "t")
    assert post_webhook(srv.url, envelope(stranger, value), SECRET).status_code == 200
    assert drain(api, timeout=1) == []
    # The same payload, signed: it arrives once.
    assert post_webhook(srv.url, payload, SECRET).status_code == 200
    got = wait_for(api, lambda b: b["typeWebhook"] == "incomingMessageReceived")
    assert got["messageData"]["textMessageData"]["textMessage"] == "forged"

    # Forgetting the credentials gives the instance back to the sandbox; payloads for the number stop.
    assert console.post(f"/instances/{inst['idInstance']}/cloud/forget").status_code == 303
    assert api.account.getStateInstance().data == {"stateInstance": "notAuthorized"}
    assert api.account.qr().data["type"] == "qrCode"
    post_webhook(
        srv.url,
        envelope(number, customer_message("15550006666", "Eve", "text", {"body": "after"})[1]),
        SECRET,
    )
    assert [b for b in drain(api, timeout=1) if b["typeWebhook"] == "incomingMessageReceived"] == []


def test_bot_library_answers_through_the_cloud_api(srv: Server, graph: FakeGraph) -> None:
    from whatsapp_chatbot_python import GreenAPIBot, Notification

    inst, number, _ = connect(srv, graph)
    bot = GreenAPIBot(str(inst["idInstance"]), inst["apiTokenInstance"], host=srv.url, media=srv.url)

    @bot.router.message(text_message="price?")
    def price(notification: Notification) -> None:
        notification.answer("It costs 12 USD.")
        raise KeyboardInterrupt  # run_forever's documented way out: the bot stops with the test

    runner = threading.Thread(target=bot.run_forever, daemon=True)
    runner.start()
    _, value = customer_message("15550007777", "Dan", "text", {"body": "price?"})
    assert post_webhook(srv.url, envelope(number, value), SECRET).status_code == 200
    answer = graph.next_sent(timeout=60)
    assert (answer["to"], answer["text"]["body"]) == ("15550007777", "It costs 12 USD.")
    runner.join(timeout=30)
    assert not runner.is_alive()


@pytest.mark.subprocess
def test_accepted_webhooks_survive_a_crash(make_server: Any, graph: FakeGraph, tmp_path: Path) -> None:
    """The 200 to Meta means stored: a server killed while it downloads the file still delivers
    the message after its restart."""
    srv = make_server(env=cloud_env(graph), data_dir=tmp_path / "crash", subprocess=True)  # killed below
    inst, number, _ = connect(srv, graph)
    photo = b"\xff\xd8\xff\xe0" + b"jpeg" * 3000
    media_id = graph.add_media(photo, "image/jpeg")
    _, value = customer_message(
        "15550008888", "Fay", "image", {"id": media_id, "mime_type": "image/jpeg", "sha256": "x"}
    )
    graph.media_gate.clear()  # the download hangs
    asked = graph.media_requests
    try:
        assert post_webhook(srv.url, envelope(number, value), SECRET).status_code == 200
        wait_until(lambda: graph.media_requests > asked)  # the server is downloading now
        srv.kill()
    finally:
        graph.media_gate.set()
    srv.start()
    got = wait_for(srv.api(inst), lambda b: b["typeWebhook"] == "incomingMessageReceived", timeout=60)
    check_contract(got)
    assert got["messageData"]["typeMessage"] == "imageMessage"
    assert httpx.get(got["messageData"]["fileMessageData"]["downloadUrl"], timeout=30).content == photo


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="chromium is not installed")
def test_connect_in_the_browser(srv: Server, graph: FakeGraph, browser: Any) -> None:
    """The console card in a real browser: a wrong token is refused with Meta's error, the right one
    connects; the screenshot is docs/console/instance-cloud.png."""
    from playwright.sync_api import expect

    n = next(_numbers)
    number = graph.add_number(f"10654035224{n:04d}", f"+1 555-02{n:02d}", "Copper Shop", f"EAAG-browser-{n}")
    inst = srv.new_instance("--name", "Support line")
    page = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
    page.set_default_timeout(30_000)
    page.goto(srv.url + "/console/login")
    page.fill("input[name=username]", "demo")
    page.fill("input[name=password]", srv.demo["console"]["password"])
    page.click("button[type=submit]")
    page.goto(f"{srv.url}/console/instances/{inst['idInstance']}")

    def submit(token: str) -> None:
        page.fill("#cloud-form input[name=phone_number_id]", number.phone_number_id)
        page.fill("#cloud-form input[name=access_token]", token)
        page.fill("#cloud-form input[name=app_secret]", SECRET)
        page.fill("#cloud-form input[name=verify_token]", "copper-verify")
        page.click("#cloud-connect")

    submit("EAAG-wrong")
    expect(page.locator("body")).to_contain_text(
        "Not connected: the Graph API refused these credentials: (#190)"
    )
    expect(page.locator("#state")).to_have_text("notAuthorized")
    submit(number.token)
    expect(page.locator("body")).to_contain_text(
        f"Connected through the WhatsApp Cloud API as {number.display}"
    )
    expect(page.locator("#state")).to_have_text("authorized")
    expect(page.locator("#cloud-number")).to_contain_text("Copper Shop")
    expect(page.locator("#cloud-webhook")).to_have_text(f"{srv.url}/channels/whatsapp-cloud/webhook")
    expect(page.locator("#qr")).to_have_count(0)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#cloud").screenshot(path=str(SHOTS / "instance-cloud.png"))


def test_the_business_number_is_not_a_sandbox_device_and_deletion_frees_it(
    srv: Server, graph: FakeGraph
) -> None:
    inst, number, console = connect(srv, graph)
    api = srv.api(inst)
    business = digits(number.display)
    # Someone creates a sandbox phone with the business number's digits and writes to it: the
    # sandbox must not deliver into the real business instance.
    srv.new_phone(business, "look-alike")
    assert srv.sandbox("GET", f"/phones/{business}").json()["linkedInstances"] == []
    r = srv.sandbox(
        "POST", "/phones/79990000001/messages", json={"chatId": f"{business}@c.us", "message": "psst"}
    )
    assert r.status_code == 200
    assert [b for b in drain(api, timeout=1) if b["typeWebhook"] == "incomingMessageReceived"] == []

    # Deleting the instance frees the number (and drops its credentials): another instance connects it.
    r = console.post(f"/instances/{inst['idInstance']}/delete", {"confirm": str(inst["idInstance"])})
    assert r.status_code == 303
    again = srv.new_instance()
    console.get(f"/instances/{again['idInstance']}")
    r = console.post(
        f"/instances/{again['idInstance']}/cloud",
        {
            "phone_number_id": number.phone_number_id,
            "access_token": number.token,
            "app_secret": SECRET,
            "verify_token": "v2",
        },
    )
    assert r.status_code == 303
    assert srv.api(again).account.getStateInstance().data == {"stateInstance": "authorized"}


def test_slow_or_busy_meta_is_waited_for_not_given_up(
    make_server: Any, graph: FakeGraph, tmp_path: Path
) -> None:
    """Timeouts are retried (the instance stays connected); a pause after a throughput refusal is
    kept however often new messages wake the instance; a status that beats the send's own answer is
    not lost; a stored file gone missing fails its message; a switched-off channel answers 501."""
    srv = make_server(
        env=cloud_env(graph, VERDIGRIS_CLOUD_TIMEOUT_SECONDS="1"),
        data_dir=tmp_path / "slow",
    )
    inst, number, console = connect(srv, graph)
    api = srv.api(inst)

    graph.send_answers.append(("sleep", 2.5))  # longer than the 1 s timeout: no answer in time
    slow = api.sending.sendMessage("15550009999@c.us", "slow")
    out = wait_for(
        api, lambda b: b["typeWebhook"] in ("outgoingMessageStatus", "stateInstanceChanged"), timeout=40
    )
    assert (out["typeWebhook"], out.get("idMessage"), out.get("status")) == (
        "outgoingMessageStatus",
        slow.data["idMessage"],
        "sent",
    )
    assert api.account.getStateInstance().data == {"stateInstance": "authorized"}
    graph.skip_sent()  # the late first attempt may have been recorded by the fake too

    # Meta refuses for 5 s while the client keeps sending: the first message waits it out.
    graph.refuse_until = time.monotonic() + 5
    ids = []
    for n in range(8):
        ids.append(api.sending.sendMessage("15550009999@c.us", f"busy {n}").data["idMessage"])
        time.sleep(0.3)
    statuses = {}
    while len(statuses) < len(ids):
        got = wait_for(api, lambda b: b["typeWebhook"] == "outgoingMessageStatus", timeout=120)
        statuses[got["idMessage"]] = got["status"]
    assert [statuses[i] for i in ids] == ["sent"] * len(ids)
    assert [graph.next_sent()["text"]["body"] for _ in ids] == [f"busy {n}" for n in range(8)]

    # Meta's "delivered" arrives before its answer to the send: it is applied once the send is recorded.
    def race(wamid: str) -> None:
        post_webhook(srv.url, envelope(number, status_update(wamid, "15550009999", "delivered")), SECRET)
        time.sleep(0.5)

    graph.before_answer = race
    try:
        early = api.sending.sendMessage("15550009999@c.us", "early bird")
        seen = [
            wait_for(api, lambda b: b["typeWebhook"] == "outgoingMessageStatus")["status"] for _ in range(2)
        ]
    finally:
        graph.before_answer = None
    assert seen == ["sent", "delivered"]
    assert (
        api.journals.getMessage("15550009999@c.us", early.data["idMessage"]).data["statusMessage"]
        == "delivered"
    )

    # A file whose stored bytes vanished before its turn: failed, not retried for ever.
    assert console.post(f"/instances/{inst['idInstance']}/pause").status_code == 303
    upload = tmp_path / "menu.pdf"
    upload.write_bytes(b"%PDF-1.4 menu")
    sent = api.sending.sendFileByUpload("15550009999@c.us", str(upload), "menu.pdf")
    for blob in (srv.data_dir / "media").rglob("*"):
        if blob.is_file() and blob.read_bytes() == b"%PDF-1.4 menu":
            blob.unlink()
    assert console.post(f"/instances/{inst['idInstance']}/resume").status_code == 303
    failed = wait_for(api, lambda b: b["typeWebhook"] == "outgoingMessageStatus")
    assert (failed["idMessage"], failed["status"]) == (sent.data["idMessage"], "failed")
    assert "could not be read" in failed["description"]

    # The operator switches the channel off: the instance answers a clear 501, not a crash.
    srv.stop()
    srv.env["VERDIGRIS_CLOUD_ENABLED"] = "false"
    srv.start()
    r = srv.wire(inst, "getStateInstance")
    assert r.status_code == 501 and "switched off" in r.json()["message"]


def test_a_campaign_the_cloud_api_cannot_carry_pauses_with_the_reason(srv: Server, graph: FakeGraph) -> None:
    from test_customers import add, campaign_state, error_of

    inst, _, console = connect(srv, graph)
    phone = f"1555{next(_numbers):07d}"
    assert add(console, phone, name="N" * 150, consent="on", consent_source="web form").status_code == 303
    console.get("/campaigns")
    # 4000 characters are allowed in a campaign; with the name and the opt-out line the message
    # grows past the Cloud API's 4096.
    r = console.post(
        "/campaigns",
        {
            "instance": str(inst["idInstance"]),
            "name": "Long",
            "text": "{name} " + "x" * 3990,
            "interval": "60",
        },
    )
    assert r.status_code == 303, error_of(r)
    path = r.headers["location"].split("/console", 1)[1]
    console.get(path)
    assert console.post(path + "/start").status_code == 303
    deadline = time.monotonic() + 30
    while campaign_state(console, path)[0] != "paused" and time.monotonic() < deadline:
        time.sleep(0.3)
    assert campaign_state(console, path)[0] == "paused"
    page = html.unescape(console.get(path).text)
    assert "the instance's network refuses this message" in page and "at most 4096" in page
    assert srv.wire(inst, "showMessagesQueue").json() == []


def test_chats_and_contacts_never_show_sandbox_names(srv: Server, graph: FakeGraph) -> None:
    """A number that also has a sandbox phone: the Cloud API instance does not know the sandbox's
    name for it (the names of a chat come from the instance's own network and phonebook)."""
    inst, _, _ = connect(srv, graph)
    api = srv.api(inst)
    customer = f"1555077{next(_numbers):04d}"
    srv.new_phone(customer, "Sandbox Sam")
    assert api.sending.sendMessage(f"{customer}@c.us", "hello").code == 200
    graph.next_sent()
    chats = {c["id"]: c for c in api.serviceMethods.getChats().data}
    contacts = {c["id"]: c for c in api.serviceMethods.getContacts().data}
    assert chats[f"{customer}@c.us"]["name"] == ""
    assert contacts[f"{customer}@c.us"]["name"] == "" and contacts[f"{customer}@c.us"]["contactName"] == ""

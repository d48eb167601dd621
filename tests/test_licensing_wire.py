"""Licensing as integrators see it: the official SDK against a real server (466 bodies, the
quotaExceeded notification, the expired-account error), and the JSON API with its signed callback."""

from __future__ import annotations

import io
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from harness import Server, drain
from verdigris.licensing.provider import sign

EXPIRED = "Instance account is expired. Renew your instance from personal area"


def call(server: Server, verb: str, path: str, who: str = "operator", **kwargs: Any) -> httpx.Response:
    creds = server.demo["operator" if who == "operator" else "console"]
    auth = (creds["username"], creds["password"]) if who else None
    return httpx.request(verb, f"{server.url}/api/v1{path}", auth=auth, timeout=60, **kwargs)


def collect(api: Any, until: Any, timeout: float = 30) -> list[dict[str, Any]]:
    """Receive and delete notifications until one matches ``until``; returns all seen."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = api.receiving.receiveNotification(5)
        assert r.code == 200, r.error
        if r.data is None:
            continue
        api.receiving.deleteNotification(r.data["receiptId"])
        seen.append(r.data["body"])
        if until(r.data["body"]):
            return seen
    raise AssertionError(f"no matching notification; saw {seen}")


def test_sdk_sees_466_and_the_quota_notification(server: Server) -> None:
    code = f"dev-{uuid.uuid4().hex[:8]}"
    r = call(
        server,
        "POST",
        "/operator/tariffs",
        json={
            "code": code,
            "name": "Developer",
            "kind": "free",
            "price": "0",
            "limits": {"correspondents": 3, "methods": {"lastIncomingMessages": 2}},
        },
    )
    assert r.status_code == 201, r.text
    phones = [f"7999666{n:04d}" for n in range(1, 6)]
    for number in phones:
        server.new_phone(number)
    inst = server.new_instance("--link", "79996660000")
    r = call(
        server, "POST", f"/instances/{inst['idInstance']}/license", who="licensee", json={"tariff": code}
    )
    assert r.status_code == 200, r.text
    api = server.api(inst)
    drain(api)
    for number in phones[:3]:
        sent = api.sending.sendMessage(f"{number}@c.us", "hello")
        assert sent.code == 200, sent.error
    refused = api.sending.sendMessage(f"{phones[3]}@c.us", "one chat too many")
    assert refused.code == 466
    body = json.loads(refused.error)
    allowed = ", ".join(f"{n}@c.us" for n in phones[:3])
    assert body == {
        "invokeStatus": {"method": "sendmessage", "used": 3, "total": 0, "status": "QUOTE_ALLOWED"},
        "correspondentsStatus": {
            "method": "correspondents",
            "used": 3,
            "total": 3,
            "status": "CORRESPONDENTS_QUOTE_EXCEEDED",
            "description": body["correspondentsStatus"]["description"],
        },
    }
    assert (
        f"You can only send or receive messages from these numbers: {allowed}."
        in body["correspondentsStatus"]["description"]
    )
    seen = collect(api, lambda n: n["typeWebhook"] == "quotaExceeded")
    quota = seen[-1]
    assert quota["instanceData"]["idInstance"] == inst["idInstance"] and isinstance(quota["timestamp"], int)
    assert quota["quotaData"]["status"] == "CORRESPONDENTS_QUOTA_EXCEEDED"
    assert (quota["quotaData"]["method"], quota["quotaData"]["used"], quota["quotaData"]["total"]) == (
        "correspondents",
        3,
        3,
    )
    # Receiving is limited to the same chats: a fifth chat's message is not announced, a known one is.
    assert (
        server.sandbox(
            "POST", f"/phones/{phones[4]}/messages", json={"chatId": inst["wid"], "message": "blocked"}
        ).status_code
        == 200
    )
    ok = server.sandbox(
        "POST", f"/phones/{phones[0]}/messages", json={"chatId": inst["wid"], "message": "allowed"}
    )
    assert ok.status_code == 200
    seen = collect(
        api,
        lambda n: (
            n.get("idMessage") == ok.json()["idMessage"] and n["typeWebhook"] == "incomingMessageReceived"
        ),
    )
    assert not any(n.get("senderData", {}).get("sender") == f"{phones[4]}@c.us" for n in seen)
    # A per-method monthly quota: the third lastIncomingMessages answers 466 QUOTE_EXCEEDED.
    assert api.journals.lastIncomingMessages().code == 200
    assert api.journals.lastIncomingMessages().code == 200
    over = api.journals.lastIncomingMessages()
    assert over.code == 466
    invoke = json.loads(over.error)["invokeStatus"]
    assert {k: invoke[k] for k in ("method", "used", "total", "status")} == {
        "method": "lastincomingmessages",
        "used": 2,
        "total": 2,
        "status": "QUOTE_EXCEEDED",
    }
    assert invoke["description"].startswith("Monthly quota has been exceeded.")
    # The billing section shows the quotas used and left.
    status = call(server, "GET", f"/instances/{inst['idInstance']}/license", who="licensee").json()
    quotas = {q["method"]: q for q in status["quotas"]}
    assert (quotas["correspondents"]["used"], quotas["correspondents"]["left"]) == (3, 0)
    assert quotas["lastincomingmessages"]["left"] == 0
    # The demo instances are unlicensed and stay unlimited.
    demo = server.api(server.instance(0))
    assert demo.sending.sendMessage(f"{phones[3]}@c.us", "demo is open").code == 200


def test_expiry_payment_callback_pdf_and_restoring_service(make_server: Any) -> None:
    secret = "cb-secret-for-tests"
    srv: Server = make_server(
        env={
            "VERDIGRIS_PAYMENT_CALLBACK_SECRET": secret,
            "VERDIGRIS_LICENSING_FLUSH_SECONDS": "0.2",
            "VERDIGRIS_OPERATOR_TIMEZONE": "Europe/Moscow",
            "VERDIGRIS_OPERATOR_LEGAL_NAME": "Wire Test Operator GmbH",
            "VERDIGRIS_OPERATOR_REGISTRATION_NUMBER": "HRB 424242",
            "VERDIGRIS_OPERATOR_BANK_DETAILS": "IBAN DE02 1203 0000 0000 2020 51",
        }
    )
    r = call(
        srv,
        "POST",
        "/operator/tariffs",
        json={"code": "pro", "name": "Pro", "price": "30.00", "currency": "EUR"},
    )
    assert r.status_code == 201, r.text
    public = httpx.get(f"{srv.url}/api/v1/tariffs", timeout=30).json()
    pro = [t for t in public["tariffs"] if t["code"] == "pro"]
    assert len(pro) == 1 and pro[0]["version"] == 1 and pro[0]["price"] == "30.00"
    assert public["operator"]["legalName"] == "Wire Test Operator GmbH"
    owner_phone, friend = "79997770001", "79997770002"
    srv.new_phone(owner_phone)
    srv.new_phone(friend)
    inst = srv.new_instance()  # not linked yet: messages wait in its queue
    grant = call(
        srv,
        "POST",
        "/operator/licenses",
        json={"instanceId": inst["idInstance"], "tariff": "pro", "days": 30},
    )
    assert grant.status_code == 201, grant.text
    code = srv.wire(inst, "getAuthorizationCode", verb="POST", json={"phoneNumber": int(owner_phone)}).json()[
        "code"
    ]
    queued = srv.wire(
        inst, "sendMessage", verb="POST", json={"chatId": f"{friend}@c.us", "message": "queued before expiry"}
    )
    assert queued.status_code == 200
    assert call(srv, "POST", f"/operator/licenses/{grant.json()['id']}/revoke").status_code == 200
    api = srv.api(inst)
    refused = api.sending.sendMessage(f"{friend}@c.us", "after expiry")
    assert refused.code == 400 and json.loads(refused.error)["message"] == EXPIRED
    assert srv.wire(inst, "receiveNotification").json()["message"] == EXPIRED
    assert srv.wire(inst, "getStateInstance").status_code == 200  # read-only account methods answer
    # The owner links the instance; the expired instance does not send its queue.
    assert srv.sandbox("POST", f"/phones/{owner_phone}/pair", json={"code": code}).status_code == 200
    incoming = srv.sandbox(
        "POST",
        f"/phones/{friend}/messages",
        json={"chatId": f"{owner_phone}@c.us", "message": "while expired"},
    )
    assert incoming.status_code == 200
    time.sleep(1.0)
    friend_saw = [
        m["content"].get("text")
        for m in srv.sandbox("GET", f"/phones/{friend}/messages").json()
        if m.get("direction") == "incoming"
    ]
    assert "queued before expiry" not in friend_saw
    # Offer -> invoice PDF with the operator's requisites -> signed provider callback.
    inv = call(
        srv,
        "POST",
        "/invoices",
        who="licensee",
        json={"items": [{"instanceId": inst["idInstance"], "tariff": "pro"}]},
    )
    assert inv.status_code == 201, inv.text
    invoice = inv.json()
    pdf = httpx.get(
        srv.url + invoice["pdf"],
        auth=(srv.demo["console"]["username"], srv.demo["console"]["password"]),
        timeout=60,
    )
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    from pypdf import PdfReader

    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    for needle in ("Wire Test Operator GmbH", "HRB 424242", "IBAN DE02", invoice["number"], "30.00 EUR"):
        assert needle in text
    payload = json.dumps(
        {
            "invoice": invoice["number"],
            "amount": "30.00",
            "currency": "EUR",
            "reference": "pi_777",
            "status": "succeeded",
        }
    ).encode()
    url = f"{srv.url}/api/v1/payments/callback/acme"
    forged = httpx.post(
        url, content=payload, headers={"X-Verdigris-Signature": sign("wrong", payload, int(time.time()))}
    )
    assert forged.status_code == 401
    assert call(srv, "GET", f"/invoices/{invoice['id']}", who="licensee").json()["status"] == "issued"
    good = {"X-Verdigris-Signature": sign(secret, payload, int(time.time()))}
    paid = httpx.post(url, content=payload, headers=good, timeout=30)
    assert paid.status_code == 200 and paid.json()["result"] == "paid", paid.text
    again = httpx.post(
        url,
        content=payload,
        headers={"X-Verdigris-Signature": sign(secret, payload, int(time.time()))},
        timeout=30,
    )
    assert again.json()["result"] == "duplicate"
    # The paid license starts tomorrow in the operator's zone (T-02).
    tomorrow = (
        (datetime.now(UTC).astimezone(ZoneInfo("Europe/Moscow")) + timedelta(days=1)).date().isoformat()
    )
    status = call(srv, "GET", f"/instances/{inst['idInstance']}/license", who="licensee").json()
    assert status["state"] == "expired" and status["upcoming"][0]["startsOn"] == tomorrow
    # The operator restores service at once by hand: the queue is sent, the kept message is delivered.
    assert (
        call(
            srv,
            "POST",
            "/operator/licenses",
            json={"instanceId": inst["idInstance"], "tariff": "pro", "days": 1},
        ).status_code
        == 201
    )
    seen = collect(api, lambda n: n["typeWebhook"] == "incomingMessageReceived")
    assert seen[-1]["messageData"]["textMessageData"]["textMessage"] == "while expired"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        texts = [
            m["content"].get("text")
            for m in srv.sandbox("GET", f"/phones/{friend}/messages").json()
            if m.get("direction") == "incoming"
        ]
        if "queued before expiry" in texts:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the kept queue was not sent after renewal")
    revenue = call(
        srv, "GET", f"/operator/revenue?from={datetime.now(UTC).date() - timedelta(days=1)}&to={tomorrow}"
    ).json()
    assert revenue["totals"] == {"EUR": "30.00"}


def test_json_api_auth_and_errors(server: Server) -> None:
    anon = httpx.get(f"{server.url}/api/v1/billing", timeout=30)
    assert anon.status_code == 401 and anon.headers["www-authenticate"].startswith("Basic")
    wrong = httpx.get(f"{server.url}/api/v1/billing", auth=("operator", "nope"), timeout=30)
    assert wrong.status_code == 401 and wrong.json()["error"] == "wrong username or password"
    assert wrong.json()["message"] == "wrong username or password"  # every face's errors carry a message
    assert call(server, "GET", "/operator/tariffs", who="licensee").status_code == 403
    bad = call(
        server,
        "POST",
        "/operator/tariffs",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert bad.status_code == 400 and "JSON" in bad.json()["error"]
    bad_price = call(server, "POST", "/operator/tariffs", json={"code": "x", "name": "X", "price": 1.5})
    assert bad_price.status_code == 400 and "floating-point" in bad_price.json()["error"]
    assert call(server, "GET", "/instances/1/license", who="licensee").status_code == 404
    mine = call(
        server, "GET", f"/instances/{server.instance(0)['idInstance']}/license", who="licensee"
    ).json()
    assert mine["state"] == "unlicensed" and mine["current"] is None
    billing = call(server, "GET", "/billing", who="licensee").json()
    assert {"instances", "licenses", "invoices", "payments", "transfers"} <= set(billing)
    assert httpx.get(f"{server.url}/api/v1/tariffs", timeout=30).status_code == 200
    assert (
        httpx.post(f"{server.url}/api/v1/payments/callback/acme", content=b"{}", timeout=30).status_code
        == 404
    )


def test_bot_library_sees_quota_exceeded(server: Server) -> None:
    """whatsapp-chatbot-python routes by typeWebhook; a bot that subscribes to quotaExceeded gets it."""
    import threading

    from whatsapp_chatbot_python import GreenAPIBot
    from whatsapp_chatbot_python.manager.observer import Observer

    code = f"bot-{uuid.uuid4().hex[:8]}"
    r = call(
        server,
        "POST",
        "/operator/tariffs",
        json={"code": code, "name": "Bot dev", "kind": "free", "limits": {"correspondents": 1}},
    )
    assert r.status_code == 201, r.text
    inst = server.new_instance("--link", "79996670000")
    assert (
        call(
            server, "POST", f"/instances/{inst['idInstance']}/license", who="licensee", json={"tariff": code}
        ).status_code
        == 200
    )
    bot = GreenAPIBot(str(inst["idInstance"]), inst["apiTokenInstance"], host=server.url, media=server.url)
    seen: list[dict[str, Any]] = []

    def on_quota(notification: Any) -> None:
        seen.append(notification.event)
        raise KeyboardInterrupt  # run_forever's documented way out

    observer = Observer(bot.router)
    observer.add_handler(on_quota)
    bot.router.observers["quotaExceeded"] = observer
    api = server.api(inst)
    assert api.sending.sendMessage("79996670001@c.us", "first chat").code == 200
    assert api.sending.sendMessage("79996670002@c.us", "second chat").code == 466
    runner = threading.Thread(target=bot.run_forever, daemon=True)
    runner.start()
    runner.join(timeout=60)
    assert not runner.is_alive(), "the bot never saw the quotaExceeded notification"
    assert seen and seen[0]["quotaData"]["status"] == "CORRESPONDENTS_QUOTA_EXCEEDED"
    assert seen[0]["quotaData"]["description"].count("79996670001@c.us") == 1


@pytest.mark.subprocess
def test_metered_counts_survive_a_crash_after_a_flush(make_server: Any, tmp_path: Any) -> None:
    env = {"VERDIGRIS_LICENSING_FLUSH_SECONDS": "0.2"}
    srv: Server = make_server(env=env, data_dir=tmp_path / "crash", subprocess=True)  # killed below
    r = call(
        srv,
        "POST",
        "/operator/tariffs",
        json={"code": "dev", "name": "Dev", "kind": "free", "limits": {"methods": {"getMessage": 3}}},
    )
    assert r.status_code == 201, r.text
    inst = srv.new_instance()
    assert (
        call(
            srv, "POST", f"/instances/{inst['idInstance']}/license", who="licensee", json={"tariff": "dev"}
        ).status_code
        == 200
    )
    for _ in range(2):
        got = srv.wire(inst, "getMessage", verb="POST", json={"chatId": "79990000001@c.us", "idMessage": "X"})
        assert got.status_code != 466
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until the counts are flushed (the documented bound)
        status = call(srv, "GET", f"/instances/{inst['idInstance']}/license", who="licensee").json()
        if status["quotas"][0]["used"] == 2:
            break
        time.sleep(0.1)
    time.sleep(0.5)
    srv.kill()
    again: Server = make_server(env=env, data_dir=tmp_path / "crash")
    third = again.wire(inst, "getMessage", verb="POST", json={"chatId": "79990000001@c.us", "idMessage": "X"})
    assert third.status_code != 466
    fourth = again.wire(
        inst, "getMessage", verb="POST", json={"chatId": "79990000001@c.us", "idMessage": "X"}
    )
    assert fourth.status_code == 466
    assert fourth.json()["invokeStatus"]["used"] == 3


def test_json_api_offer_rules_plan_change_and_operator_actions(server: Server) -> None:
    tag = uuid.uuid4().hex[:6]
    pro, biz, promo = f"pro-{tag}", f"biz-{tag}", f"P{tag}".upper()
    for code, price in ((pro, "30.00"), (biz, "90.00")):
        r = call(
            server,
            "POST",
            "/operator/tariffs",
            json={"code": code, "name": code, "price": price, "currency": "USD", "public": False},
        )
        assert r.status_code == 201, r.text
    rule = call(
        server,
        "POST",
        "/operator/loyalty-rules",
        json={"name": "Ten off", "kind": "percent", "value": "10", "promoCode": promo, "tariffCode": pro},
    )
    assert rule.status_code == 201, rule.text
    inst = server.new_instance()
    item = {"instanceId": inst["idInstance"], "tariff": pro}
    offer = call(
        server, "POST", "/invoices", who="licensee", json={"items": [item], "promoCode": promo.lower()}
    )
    assert offer.status_code == 201, offer.text
    invoice = offer.json()
    assert invoice["total"] == "27.00"
    assert invoice["lines"][0]["adjustments"] == [
        {"ruleId": rule.json()["id"], "rule": "Ten off", "kind": "percent", "amount": "-3.00", "bonusDays": 0}
    ]
    spare = call(server, "POST", "/invoices", who="licensee", json={"items": [item]}).json()
    assert (
        call(server, "POST", f"/invoices/{spare['id']}/cancel", who="licensee").json()["status"]
        == "cancelled"
    )
    assert call(server, "POST", f"/operator/invoices/{spare['id']}/mark-paid", json={}).status_code == 409
    paid = call(
        server,
        "POST",
        f"/operator/invoices/{invoice['id']}/mark-paid",
        json={"reference": f"bank-{tag}", "amount": "27.00"},
    )
    assert paid.status_code == 200 and paid.json()["status"] == "paid", paid.text
    assert any(
        p["reference"] == f"bank-{tag}" for p in call(server, "GET", "/operator/payments").json()["payments"]
    )
    # The paid license starts tomorrow; a grant covers today so there is a running license to change.
    assert (
        call(
            server,
            "POST",
            f"/instances/{inst['idInstance']}/plan-change/preview",
            who="licensee",
            json={"tariff": biz},
        ).status_code
        == 409
    )
    grant = call(
        server,
        "POST",
        "/operator/licenses",
        json={"instanceId": inst["idInstance"], "tariff": pro, "days": 30},
    ).json()
    preview = call(
        server,
        "POST",
        f"/instances/{inst['idInstance']}/plan-change/preview",
        who="licensee",
        json={"tariff": biz},
    )
    assert preview.status_code == 200, preview.text
    data = preview.json()
    assert (
        data["current"]["id"] == grant["id"]
        and data["price"] == "90.00"
        and data["refund"].startswith("none")
    )
    assert data["unusedValue"] == "0.00" and data["extensionDays"] == 0  # a grant was not paid for
    confirmed = call(
        server, "POST", f"/instances/{inst['idInstance']}/plan-change", who="licensee", json={"tariff": biz}
    )
    assert confirmed.status_code == 201 and confirmed.json()["invoice"]["kind"] == "plan_change"
    extended = call(server, "POST", f"/operator/licenses/{grant['id']}/extend", json={"days": 5}).json()
    assert extended["endsOn"] > grant["endsOn"]
    assert any(
        lic["id"] == grant["id"] for lic in call(server, "GET", "/operator/licenses").json()["licenses"]
    )
    assert call(server, "DELETE", f"/operator/loyalty-rules/{rule.json()['id']}").json() == {"result": True}
    gone = call(server, "POST", "/invoices", who="licensee", json={"items": [item], "promoCode": promo})
    assert gone.status_code == 400 and "unknown promo code" in gone.json()["error"]
    # Non-public tariffs are not in the public list.
    assert pro not in [
        t["code"] for t in httpx.get(f"{server.url}/api/v1/tariffs", timeout=30).json()["tariffs"]
    ]


def test_a_clean_shutdown_flushes_the_counters(make_server: Any, tmp_path: Any) -> None:
    env = {"VERDIGRIS_LICENSING_FLUSH_SECONDS": "3600"}  # only the shutdown can write them
    srv: Server = make_server(env=env, data_dir=tmp_path / "clean")
    r = call(
        srv,
        "POST",
        "/operator/tariffs",
        json={"code": "dev", "name": "Dev", "kind": "free", "limits": {"methods": {"getMessage": 2}}},
    )
    assert r.status_code == 201, r.text
    inst = srv.new_instance()
    assert (
        call(
            srv, "POST", f"/instances/{inst['idInstance']}/license", who="licensee", json={"tariff": "dev"}
        ).status_code
        == 200
    )
    body = {"chatId": "79990000001@c.us", "idMessage": "X"}
    assert srv.wire(inst, "getMessage", verb="POST", json=body).status_code != 466
    assert srv.wire(inst, "getMessage", verb="POST", json=body).status_code != 466
    srv.stop()
    again: Server = make_server(env=env, data_dir=tmp_path / "clean")
    refused = again.wire(inst, "getMessage", verb="POST", json=body)
    assert refused.status_code == 466 and refused.json()["invokeStatus"]["used"] == 2

"""Screening of outgoing content (T-23): the operator's rules block or hold messages; held ones
wait in a review queue until approved (then delivered) or rejected (then failed with a status
notification); every case is recorded; bad rules are refused."""

from __future__ import annotations

import html
import re
import time
from typing import Any

import httpx

from console_client import Console
from harness import Server, drain


def error_of(r: httpx.Response) -> str:
    """The refusal as the page shows it: the top line, then each field's error (lowercase)."""
    found = re.search(r'class="error"[^>]*>([^<]*)<', r.text)
    fields = re.findall(r'class="field-error" id="([^"]+)-error"[^>]*>([^<]*)<', r.text)
    shown = [found.group(1)] if found else []
    return html.unescape(" ".join(shown + [f"[{fid}] {text}" for fid, text in fields])).lower()


def inbox(srv: Server, phone: str) -> list[str]:
    r = srv.sandbox("GET", f"/phones/{phone}/messages", params={"direction": "incoming"})
    return [m["content"].get("text", "") for m in r.json()]


def wait_for_text(srv: Server, phone: str, text: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if text in inbox(srv, phone):
            return
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never reached {phone}")


def test_rules_block_hold_approve_reject(make_server: Any) -> None:
    srv: Server = make_server(env={"VERDIGRIS_SEND_DELAY_MIN_MS": "0"})
    op = Console(srv)
    assert op.login(srv.demo["operator"]["username"], srv.demo["operator"]["password"]).status_code == 303
    op.get("/operator/screening")

    for form, message in [
        ({"kind": "pattern", "value": "(unclosed", "action": "block"}, "not a valid regular expression"),
        ({"kind": "domain", "value": "not a domain", "action": "review"}, "a domain looks like"),
        ({"kind": "keyword", "value": "x", "action": "delete"}, "action must be"),
        ({"kind": "smell", "value": "x", "action": "block"}, "kind must be"),
    ]:
        r = op.post("/operator/screening/rules", form)
        assert r.status_code == 400 and message in error_of(r), (form, error_of(r))
    assert "No rules" in op.get("/operator/screening").text

    rules = [
        {"kind": "keyword", "value": "casino bonus", "action": "block", "note": "gambling ads"},
        {"kind": "domain", "value": "https://Evil.Example/", "action": "review", "note": "suspicious links"},
        {"kind": "pattern", "value": r"\bpassword\s*[:=]", "action": "review", "note": "credentials"},
    ]
    for form in rules:
        assert op.post("/operator/screening/rules", form).status_code == 303

    api = srv.api(srv.instance(0))
    drain(api)
    ben = "79990000002"

    # Blocked: a clear 400, nothing queued or delivered, and the case recorded.
    refused = api.sending.sendMessage(f"{ben}@c.us", "Your CASINO Bonus is waiting!")
    assert refused.code == 400
    assert "content rules" in refused.error and "gambling ads" in refused.error
    assert api.queues.showMessagesQueue().data == []
    # Words are matched whole: "casino bonuses" is another phrase.
    assert api.sending.sendMessage(f"{ben}@c.us", "casino bonuses explained").code == 200
    wait_for_text(srv, ben, "casino bonuses explained")

    # Held: accepted (200 + idMessage), waiting in the queue as pending, not delivered.
    held = api.sending.sendMessage(f"{ben}@c.us", "Look: http://shop.evil.example/deal")
    assert held.code == 200
    held_id = held.data["idMessage"]
    second = api.sending.sendMessage(f"{ben}@c.us", "my password: hunter2")
    assert second.code == 200
    waiting = op.get("/operator/screening").text
    cases = re.findall(r'data-case="(\d+)"', waiting)
    assert len(cases) == 2 and "shop.evil.example" in html.unescape(waiting)
    queue = api.queues.showMessagesQueue().data
    assert {m["messageID"] for m in queue} >= {held_id}
    status = api.journals.getMessage(f"{ben}@c.us", held_id).data
    assert status["statusMessage"] == "pending"

    # Approve the link (delivered), reject the credentials (failed, with a status notification).
    first, other = sorted(cases, key=int)
    assert op.post(f"/operator/screening/cases/{first}/approve").status_code == 303
    wait_for_text(srv, ben, "Look: http://shop.evil.example/deal")
    assert op.post(f"/operator/screening/cases/{other}/reject").status_code == 303
    assert op.post(f"/operator/screening/cases/{other}/approve").status_code == 409
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = api.receiving.receiveNotification(5)
        if r.data:
            api.receiving.deleteNotification(r.data["receiptId"])
            seen.append(r.data["body"])
            body = r.data["body"]
            if body["typeWebhook"] == "outgoingMessageStatus" and body["status"] == "failed":
                assert body["idMessage"] == second.data["idMessage"]
                assert "content rules" in body.get("description", "")
                break
    else:
        raise AssertionError(f"no failed status; saw {seen}")
    assert "my password: hunter2" not in inbox(srv, ben)

    # The cases stay on record; a deactivated rule stops applying.
    text = html.unescape(op.get("/operator/screening").text)
    assert "Nothing waiting." in text and "blocked" in text and "approved" in text and "rejected" in text
    rule_id = re.findall(r"/operator/screening/rules/(\d+)/deactivate", op.get("/operator/screening").text)[
        -1
    ]
    assert op.post(f"/operator/screening/rules/{rule_id}/deactivate").status_code == 303
    assert api.sending.sendMessage(f"{ben}@c.us", "casino bonus now allowed").code == 200
    wait_for_text(srv, ben, "casino bonus now allowed")

    # Licensees have no access to the screening page.
    lee = Console(srv)
    assert lee.login("demo", srv.demo["console"]["password"]).status_code == 303
    assert lee.get("/operator/screening").status_code == 403


def test_operator_removes_a_stored_message_and_its_file(make_server: Any, tmp_path: Any) -> None:
    srv: Server = make_server()
    op = Console(srv)
    assert op.login(srv.demo["operator"]["username"], srv.demo["operator"]["password"]).status_code == 303
    inst = srv.instance(0)
    api = srv.api(inst)
    leaflet = tmp_path / "leaflet.txt"
    leaflet.write_bytes(b"fraudulent offer\n")
    sent = api.sending.sendFileByUpload("79990000002@c.us", str(leaflet), caption="act now")
    assert sent.code == 200
    id_message, url = sent.data["idMessage"], sent.data["urlFile"]
    assert httpx.get(url, timeout=30).status_code == 200
    journal = api.journals.getMessage("79990000002@c.us", id_message)
    assert journal.code == 200

    op.get("/operator/screening")
    form = {"instance": str(inst["idInstance"]), "id_message": id_message}
    r = op.post("/operator/screening/remove", {**form, "reason": ""})
    assert r.status_code == 400 and "reason" in error_of(r)
    r = op.post("/operator/screening/remove", {**form, "id_message": "NOPE", "reason": "fraud"})
    assert r.status_code == 404 and "has no message" in error_of(r)
    assert api.journals.getMessage("79990000002@c.us", id_message).code == 200  # nothing changed yet

    assert (
        op.post("/operator/screening/remove", {**form, "reason": "fraud reported by users"}).status_code
        == 303
    )
    assert api.journals.getMessage("79990000002@c.us", id_message).code != 200
    assert httpx.get(url, timeout=30).status_code == 404
    page = html.unescape(op.get("/operator/screening").text)
    assert "removed" in page and "fraud reported by users" in page

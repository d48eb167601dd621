"""Mail from the operator (T-20): service announcements reach every user, advertising only those
who agreed to it, with an unsubscribe link that works without logging in and is recorded."""

from __future__ import annotations

import html
import re
import uuid
from pathlib import Path
from typing import Any

import httpx

from console_client import Console, mail_text, new_user, outbox_mail
from harness import Server


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def mails_to(data_dir: Path, address: str, subject: str) -> int:
    import email
    import email.policy

    count = 0
    for path in (data_dir / "outbox").glob("*.eml"):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        count += msg["To"] == address and msg["Subject"] == subject
    return count


def announce(op: Console, kind: str, subject: str, text: str = "Hello") -> httpx.Response:
    op.get("/operator/announcements")
    form = {"kind": kind, "subject": subject, "text": text, "action": "send", "confirmed": "yes"}
    return op.post("/operator/announcements", form)


def wait_mailed(op: Console, subject: str) -> None:
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        row = re.search(
            rf"<td>{re.escape(subject)}</td><td>(\d+)</td>\s*<td>(\d+)(.*?)</td>",
            op.get("/operator/announcements").text,
            re.S,
        )
        if row and "sending" not in row.group(3):
            return
        time.sleep(0.2)
    raise AssertionError(f"{subject!r} not mailed")


def test_marketing_only_to_consenting_users_and_unsubscribe(make_server: Any) -> None:
    srv: Server = make_server()
    op = Console(srv)
    assert op.login(srv.demo["operator"]["username"], srv.demo["operator"]["password"]).status_code == 303
    yes_name, no_name = unique("yes"), unique("no")
    new_user(srv, yes_name, marketing="on")
    no_user, _ = new_user(srv, no_name)
    yes_mail, no_mail = f"{yes_name}@example.test", f"{no_name}@example.test"

    # Bad input is refused and sends nothing.
    for kind, subject, text, message in [
        ("spam", "Hi", "x", "kind-error\" role=\"alert\">'service' or 'marketing'"),
        ("service", "", "x", 'subject-error" role="alert">One line of 1 to 200'),
        ("service", "Two\nlines", "x", 'subject-error" role="alert">One line of 1 to 200'),
        ("marketing", "Sale", "", 'text-error" role="alert">Required, at most 20000'),
    ]:
        r = announce(op, kind, subject, text)
        assert r.status_code == 400 and message in html.unescape(r.text), (kind, subject, r.status_code)
    assert 'id="announcements"' not in op.get("/operator/announcements").text

    # Advertising: only the user who agreed, with an unsubscribe link.
    offer = unique("Offer ")
    assert announce(op, "marketing", offer, "Half price this week.").status_code == 303
    wait_mailed(op, offer)
    offer_mail = outbox_mail(srv.data_dir, yes_mail, offer)
    body = mail_text(offer_mail)
    assert str(offer_mail["List-Unsubscribe"]).startswith(f"<{srv.url}/console/unsubscribe/")
    assert "Half price this week." in body
    assert mails_to(srv.data_dir, no_mail, offer) == 0
    link = re.search(r"Unsubscribe: (http\S+)", body)
    assert link

    # Service announcements reach everyone, without an unsubscribe link.
    notice = unique("Maintenance ")
    assert announce(op, "service", notice, "Tonight 02:00-03:00 UTC.").status_code == 303
    wait_mailed(op, notice)
    for address in (yes_mail, no_mail):
        text = mail_text(outbox_mail(srv.data_dir, address, notice))
        assert "Tonight" in text and "Unsubscribe" not in text

    # The link asks first (a GET changes nothing), then unsubscribes without a login.
    visitor = Console(srv)
    path = link.group(1).split("/console", 1)[1]
    assert "confirm-unsubscribe" in visitor.get(path).text
    forged = path.rsplit(".", 1)[0] + ".0000"
    assert visitor.get(forged).status_code == 404
    assert visitor.post(forged).status_code == 404
    second = unique("Offer ")
    r = visitor.post(path)
    assert r.status_code == 200 and 'id="unsubscribed"' in r.text
    assert announce(op, "marketing", second).status_code == 409  # nobody agrees any more
    assert mails_to(srv.data_dir, yes_mail, second) == 0

    # Licensees never reach the operator's page; the consent change is journalled.
    assert no_user.get("/operator/announcements").status_code == 403
    assert (
        no_user.post("/operator/announcements", {"kind": "service", "subject": "x", "text": "y"}).status_code
        == 403
    )
    events = op.events("/operator/events")
    assert any(e["kind"] == "consent_changed" and "marketing withdrawn" in e["detail"] for e in events)
    assert any(e["kind"] == "announcement_sent" and offer in e["detail"] for e in events)


def test_an_announcement_is_previewed_and_tested_before_it_goes_to_everyone(make_server: Any) -> None:
    srv: Server = make_server()
    op = Console(srv)
    assert op.login(srv.demo["operator"]["username"], srv.demo["operator"]["password"]).status_code == 303
    reader = unique("reader")
    new_user(srv, reader)
    op.get("/operator/announcements")
    subject = unique("Notice ")
    form = {"kind": "service", "subject": subject, "text": "We move on Monday."}

    # Preview: the mail as recipients read it, their count, and nothing sent.
    r = op.post("/operator/announcements", {**form, "action": "preview"})
    assert r.status_code == 200 and 'id="announcement-preview"' in r.text
    body = html.unescape(re.search(r'id="preview-body">(.*?)</pre>', r.text, re.S).group(1))  # type: ignore[union-attr]
    assert body.startswith("We move on Monday.") and "A service message from" in body
    assert re.search(r'id="preview-recipients">\d+ users?<', r.text)
    # Sending without the confirmation box only shows the preview again.
    r = op.post("/operator/announcements", {**form, "action": "send"})
    assert r.status_code == 200 and 'id="announcement-preview"' in r.text
    assert 'id="announcements"' not in r.text
    assert mails_to(srv.data_dir, f"{reader}@example.test", subject) == 0

    # A test goes to one address alone.
    address = "op-test@example.test"
    r = op.post("/operator/announcements", {**form, "action": "test", "test_to": address})
    assert r.status_code == 200 and "nobody else received it" in r.text
    # Without an address (the demo operator has none) the test is refused, sending nothing.
    r = op.post("/operator/announcements", {**form, "action": "test"})
    assert r.status_code == 400 and "needs an e-mail address" in r.text
    assert mails_to(srv.data_dir, address, "[Test] " + subject) == 1
    assert mails_to(srv.data_dir, f"{reader}@example.test", subject) == 0
    assert 'id="announcements"' not in op.get("/operator/announcements").text

    # Confirmed from the preview, it goes to everyone.
    r = op.post("/operator/announcements", {**form, "action": "send", "confirmed": "yes"})
    assert r.status_code == 303
    wait_mailed(op, subject)
    assert mails_to(srv.data_dir, f"{reader}@example.test", subject) == 1

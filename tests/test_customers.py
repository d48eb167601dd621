"""The customer database and campaigns (T-21, T-22) through the console, with sandbox phones as the
customers: consent decides who is reached, every message carries the opt-out line, a STOP reply
takes effect before the next send, bad input changes nothing, tenants and roles are kept apart."""

from __future__ import annotations

import csv
import html
import io
import re
import uuid
from typing import Any

import httpx

from console_client import Console, join_team, new_user
from harness import Server
from sandbox_kit import wait_until

FOOTER = "Reply STOP to unsubscribe."


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def error_of(r: httpx.Response) -> str:
    """The refusal as the page shows it: the top line, then each field's error."""
    found = re.search(r'class="error"[^>]*>([^<]*)<', r.text)
    fields = re.findall(r'class="field-error" id="([^"]+)-error"[^>]*>([^<]*)<', r.text)
    shown = [found.group(1)] if found else []
    return html.unescape(" ".join(shown + [f"[{fid}] {text}" for fid, text in fields]))


def contact_rows(console: Console, query: str = "") -> dict[str, str]:
    """phone → consent cell of the contact list."""
    text = console.get("/customers" + query).text
    return {
        phone: re.sub(r"<[^>]+>", "", cell).strip()
        for phone, cell in re.findall(r'data-phone="(\d+)">.*?<td class="consent">(.*?)</td>', text, re.S)
    }


def add(console: Console, phone: str, **form: str) -> httpx.Response:
    console.get("/customers")
    return console.post("/customers", {"phone": phone, **form})


def upload(console: Console, text: str) -> httpx.Response:
    console.get("/customers")
    return console.http.post(
        "/console/customers/import",
        data={"csrf": console.csrf},
        files={"file": ("contacts.csv", text.encode(), "text/csv")},
    )


def phone_texts(server: Server, phone: str) -> list[str]:
    r = server.sandbox("GET", f"/phones/{phone}/messages", params={"direction": "incoming"})
    assert r.status_code == 200, r.text
    return [m["content"].get("text", "") for m in r.json()]


def campaign_state(console: Console, path: str) -> tuple[str, dict[str, str]]:
    text = console.get(path).text
    status = re.search(r'id="campaign-status">(\w+)<', text)
    steps = dict(re.findall(r'<tr data-phone="(\d+)">.*?<td class="step">(\w+)</td>', text, re.S))
    assert status, text
    return status.group(1), steps


def test_contacts_consent_import_export_and_isolation(server: Server) -> None:
    owner, _ = new_user(server, unique("crm"))
    assert (
        add(
            owner,
            "+7 (999) 101-00-01",
            name="Anna",
            tags="vip spring",
            consent="on",
            consent_source="web form",
        ).status_code
        == 303
    )
    before = contact_rows(owner)
    assert before == {"79991010001": "yes"}

    # Refusals: each names the problem and adds nothing.
    for form, status, message in [
        ({"phone": "12345"}, 400, "7 to 15 digits"),
        ({"phone": "+79991010001"}, 409, "already contact"),
        ({"phone": "79991010002", "tags": "bad tag!"}, 400, "[add-tags] 'tag!'"),
        ({"phone": "79991010002", "consent": "on"}, 400, "[add-consent_source] Say how the consent"),
        ({"phone": "79991010002", "name": "x\x00y"}, 400, "[add-name] "),
    ]:
        r = add(owner, **form)  # type: ignore[arg-type]
        assert r.status_code == status and message in error_of(r), (form, r.status_code, error_of(r))
    assert contact_rows(owner) == before

    # A CSV with one bad line is refused whole, naming the line.
    bad = (
        "phone,name,tags,consent\n79991010002,Boris,vip,yes\nnot-a-phone,Vera,,no\n79991010003,Gleb,,maybe\n"
    )
    r = upload(owner, bad)
    assert r.status_code == 400
    assert "line 3:" in error_of(r) and "line 4: consent must be yes or no" in error_of(r)
    assert contact_rows(owner) == before
    r = upload(owner, "name,tags\nBoris,vip\n")
    assert r.status_code == 400 and "at least 'phone'" in error_of(r)

    good = (
        "phone,name,tags,consent,consent_source\n"
        "79991010002,Boris,vip,yes,paper form\n"
        "79991010003,Gleb,,no,\n"
        "+79991010001,Anna B.,autumn,yes,\n"
    )
    r = upload(owner, good)
    assert r.status_code == 303, error_of(r)
    assert "1 updated" in html.unescape(owner.get("/customers").text)
    assert contact_rows(owner) == {"79991010001": "yes", "79991010002": "yes", "79991010003": "no"}
    assert set(contact_rows(owner, "?tag=vip")) == {"79991010001", "79991010002"}

    exported = owner.get("/customers/export.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    rows = {r["phone"]: r for r in csv.DictReader(io.StringIO(exported.text))}
    assert rows["79991010001"]["name"] == "Anna B." and rows["79991010001"]["tags"] == "autumn;spring;vip"
    assert rows["79991010002"]["consent_source"] == "paper form" and rows["79991010003"]["consent"] == "no"

    # The export imports again unchanged (a round trip adds nothing).
    round_trip = "\n".join(
        ",".join(line.split(",")[:6]) for line in exported.text.replace("\r\n", "\n").strip().split("\n")
    )
    assert upload(owner, round_trip + "\n").status_code == 303
    assert contact_rows(owner) == {"79991010001": "yes", "79991010002": "yes", "79991010003": "no"}

    # Another tenant sees none of it; a viewer of the team sees but cannot change.
    contact_path = re.search(r'href="/console(/customers/\d+)">\+79991010001', owner.get("/customers").text)
    assert contact_path
    other, _ = new_user(server, unique("crm2"))
    assert contact_rows(other) == {}
    assert other.get(contact_path.group(1)).status_code == 404
    other.get("/customers")
    assert other.post(contact_path.group(1) + "/delete").status_code == 404
    viewer, _ = join_team(server, owner, "viewer")
    assert set(contact_rows(viewer)) == {"79991010001", "79991010002", "79991010003"}
    assert add(viewer, "79991010009").status_code == 403
    assert "79991010009" not in contact_rows(owner)

    # Withdrawal by hand keeps the record of the consent.
    owner.get(contact_path.group(1))
    r = owner.post(contact_path.group(1) + "/consent", {"granted": "no", "source": "asked by phone"})
    assert r.status_code == 303
    page = html.unescape(owner.get(contact_path.group(1)).text)
    assert "withdrawn" in page and "asked by phone" in page and "web form" in page
    assert contact_rows(owner)["79991010001"] == "opted out"


def test_campaign_reaches_only_consenting_contacts_and_stop_wins(make_server: Any) -> None:
    srv: Server = make_server(env={"VERDIGRIS_SANDBOX_CLOCK": "true"})
    owner_name = unique("camp")
    owner, _ = new_user(srv, owner_name)
    shop_phone = "79992020000"
    srv.new_phone(shop_phone, "Shop")
    inst = srv.new_instance("--link", shop_phone, "--account", owner_name)
    customers = {"79992020001": "Ann", "79992020002": "Bob", "79992020003": "Cid", "79992020004": "Dee"}
    for phone, name in customers.items():
        srv.new_phone(phone, name)
    consent = {"consent": "on", "consent_source": "signed form"}
    assert add(owner, "79992020001", name="Ann", tags="vip", **consent).status_code == 303
    assert add(owner, "79992020002", name="Bob", tags="vip", **consent).status_code == 303
    assert add(owner, "79992020003", name="Cid", tags="vip").status_code == 303  # no consent
    assert add(owner, "79992020004", name="Dee", **consent).status_code == 303  # not tagged

    owner.get("/campaigns")
    bad = owner.post(
        "/campaigns", {"instance": str(inst["idInstance"]), "name": "x", "text": "", "interval": "60"}
    )
    assert bad.status_code == 400 and "[campaign-text] The campaign needs a text" in error_of(bad)
    foreign = owner.post(
        "/campaigns", {"instance": "7700000001", "name": "x", "text": "hi", "interval": "60"}
    )
    assert foreign.status_code == 404
    assert "<tbody>" not in owner.get("/campaigns").text  # nothing saved

    r = owner.post(
        "/campaigns",
        {
            "instance": str(inst["idInstance"]),
            "name": "VIP sale",
            "tag": "vip",
            "text": "Hello {name}, -20% today.",
            "interval": "3600",
        },
    )
    assert r.status_code == 303, error_of(r)
    path = r.headers["location"].split("/console", 1)[1]
    owner.get(path)
    assert owner.post(path + "/start").status_code == 303
    assert owner.post(path + "/start").status_code == 409  # only a draft starts

    # The first recipient gets the text with the opt-out line at once; the next waits an hour.
    first = wait_until(lambda: phone_texts(srv, "79992020001"))
    assert first == [f"Hello Ann, -20% today.\n\n{FOOTER}"]
    status, steps = campaign_state(owner, path)
    assert status == "running" and steps == {"79992020001": "sent", "79992020002": "pending"}

    # Bob replies STOP before his turn: when the hour has passed he is skipped, never sent to.
    r = srv.sandbox(
        "POST", "/phones/79992020002/messages", json={"chatId": f"{shop_phone}@c.us", "message": "Stop!"}
    )
    assert r.status_code == 200
    wait_until(lambda: contact_rows(owner)["79992020002"] == "opted out")
    assert srv.sandbox("POST", "/clock", json={"advanceSeconds": 3600}).status_code == 200
    wait_until(lambda: campaign_state(owner, path)[0] == "done")
    assert campaign_state(owner, path)[1] == {"79992020001": "sent", "79992020002": "skipped"}
    for phone in ("79992020002", "79992020003", "79992020004"):
        assert phone_texts(srv, phone) == [], phone

    # Ann answers STOP too; a campaign to everyone now reaches Dee alone.
    srv.sandbox(
        "POST", "/phones/79992020001/messages", json={"chatId": f"{shop_phone}@c.us", "message": "stop"}
    )
    wait_until(lambda: contact_rows(owner)["79992020001"] == "opted out")
    owner.get("/campaigns")
    r = owner.post(
        "/campaigns", {"instance": str(inst["idInstance"]), "name": "All", "text": "News!", "interval": "1"}
    )
    second = r.headers["location"].split("/console", 1)[1]
    owner.get(second)
    assert owner.post(second + "/start").status_code == 303
    wait_until(lambda: campaign_state(owner, second)[0] == "done")
    assert campaign_state(owner, second)[1] == {"79992020004": "sent"}
    assert wait_until(lambda: phone_texts(srv, "79992020004")) == [f"News!\n\n{FOOTER}"]
    assert len(phone_texts(srv, "79992020001")) == 1

    # A campaign with nobody left to reach cannot start; its draft stays.
    r = owner.post(
        "/campaigns",
        {
            "instance": str(inst["idInstance"]),
            "name": "VIP 2",
            "tag": "vip",
            "text": "Again",
            "interval": "1",
        },
    )
    third = r.headers["location"].split("/console", 1)[1]
    owner.get(third)
    r = owner.post(third + "/start")
    assert r.status_code == 409 and "have consented" in error_of(r)
    assert campaign_state(owner, third)[0] == "draft"

    # The contact's page counts what was exchanged and the campaigns that reached them.
    ann = re.search(r'href="/console(/customers/\d+)">\+79992020001', owner.get("/customers").text)
    assert ann
    page = html.unescape(owner.get(ann.group(1)).text)
    assert "1 received, 1 sent" in page and "1 reached" in page and "VIP sale" in page


def test_campaign_pauses_when_the_instance_is_not_linked(server: Server) -> None:
    owner_name = unique("pause")
    owner, _ = new_user(server, owner_name)
    inst = server.new_instance("--account", owner_name)  # never linked
    assert add(owner, "79993030001", consent="on", consent_source="form").status_code == 303
    owner.get("/campaigns")
    r = owner.post(
        "/campaigns", {"instance": str(inst["idInstance"]), "name": "P", "text": "Hi", "interval": "1"}
    )
    path = r.headers["location"].split("/console", 1)[1]
    owner.get(path)
    assert owner.post(path + "/start").status_code == 303
    wait_until(lambda: campaign_state(owner, path)[0] == "paused")
    text = html.unescape(owner.get(path).text)
    assert "notAuthorized" in text and "link it to a phone" in text
    assert campaign_state(owner, path)[1] == {"79993030001": "pending"}  # nothing lost
    assert owner.post(path + "/cancel").status_code == 303
    assert campaign_state(owner, path)[0] == "cancelled"

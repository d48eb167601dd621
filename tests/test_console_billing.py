"""The billing pages over plain HTTP: refusals re-render the page with the service's message and
status and change nothing; tenants, team roles and the operator see what they may; the licensing
JSON API follows the same team rules and journals failed logins."""

from __future__ import annotations

import html
import re
import uuid

import httpx

from console_client import Console, join_team, new_user
from harness import Server


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def error_of(r: httpx.Response) -> str:
    """The refusal as the page shows it: the top line, then each field's error."""
    found = re.search(r'class="error"[^>]*>([^<]*)<', r.text)
    fields = re.findall(r'class="field-error" id="([^"]+)-error"[^>]*>([^<]*)<', r.text)
    shown = [found.group(1)] if found else []
    return html.unescape(" ".join(shown + [f"[{fid}] {text}" for fid, text in fields]))


def operator(server: Server) -> Console:
    op = Console(server)
    assert (
        op.login(server.demo["operator"]["username"], server.demo["operator"]["password"]).status_code == 303
    )
    return op


def paid_tariff(op: Console, price: str = "10.00") -> str:
    code = unique("t")
    op.get("/operator/billing")
    r = op.post(
        "/operator/billing/tariffs",
        {
            "code": code,
            "name": f"Tariff {code}",
            "kind": "paid",
            "price": price,
            "currency": "EUR",
            "public": "on",
        },
    )
    assert r.status_code == 303, error_of(r) or r.text
    return code


def new_instance(console: Console) -> int:
    console.get("/")
    r = console.post("/instances", {"name": "billing"})
    assert r.status_code == 303, r.text
    return int(r.headers["location"].rsplit("/", 1)[1])


def invoices_of(console: Console) -> list[str]:
    return re.findall(r'data-invoice="([^"]+)"', console.get("/billing").text)


def test_refused_actions_show_the_reason_and_change_nothing(server: Server) -> None:
    op = operator(server)
    code = paid_tariff(op)
    lee, _ = new_user(server, unique("bill"))
    instance_id = new_instance(lee)
    assert lee.get("/billing").status_code == 200

    refusals = [
        (
            {"instance": str(instance_id), "tariff": code, "periods": "many"},
            400,
            "periods] a whole number from 1 to 120",
        ),
        ({"instance": str(instance_id), "tariff": code, "periods": "0"}, 400, "a whole number from 1 to 120"),
        ({"instance": str(instance_id), "tariff": "no-such-tariff"}, 404, "tariff] no current tariff"),
        ({"instance": "7700000001", "tariff": code}, 404, "no instance 7700000001"),  # the demo tenant's
        ({"instance": str(instance_id), "tariff": code, "promo": "NOPE"}, 400, "promo] unknown promo code"),
    ]
    for form, status, message in refusals:
        r = lee.post("/billing/buy", form)
        shown = error_of(r).lower()
        assert r.status_code == status and message in shown, (form, r.status_code, shown)
    assert invoices_of(lee) == []

    r = lee.post(f"/billing/instances/{instance_id}/start", {"tariff": code})
    assert r.status_code == 400 and "start it without an invoice" not in error_of(r)
    assert "is not a free or trial tariff" in error_of(r)
    r = lee.get(f"/billing/instances/{instance_id}/change?tariff={code}")
    assert r.status_code == 409 and "no running paid license" in error_of(r)

    # Without the form's CSRF token nothing happens.
    r = lee.post("/billing/buy", {"instance": str(instance_id), "tariff": code}, csrf=False)
    assert r.status_code == 403
    assert invoices_of(lee) == []

    # A good request issues exactly one invoice; another tenant cannot see it or its PDF.
    lee.get("/billing")
    r = lee.post("/billing/buy", {"instance": str(instance_id), "tariff": code, "periods": "2"})
    assert r.status_code == 303, error_of(r)
    invoice_path = r.headers["location"].split("/console", 1)[1]
    page = lee.get(invoice_path)
    assert page.status_code == 200 and "20.00 EUR" in page.text
    assert lee.get(invoice_path + "/pdf").headers["content-type"] == "application/pdf"
    other, _ = new_user(server, unique("other"))
    assert other.get(invoice_path).status_code == 404
    assert other.get(invoice_path + "/pdf").status_code == 404
    other.get("/billing")
    invoice_id = invoice_path.rsplit("/", 1)[1]
    assert other.post(f"/billing/invoices/{invoice_id}/cancel").status_code == 404
    assert "issued" in lee.get(invoice_path).text

    # Licensees never reach the operator's desk; the operator's refusals are explained too.
    assert lee.get("/operator/billing").status_code == 403
    assert lee.post(f"/operator/billing/invoices/{invoice_id}/paid", {"reference": "x"}).status_code == 403
    op.get("/operator/billing")
    r = op.post("/operator/billing/invoices/999999999/paid", {"reference": "x"})
    assert r.status_code == 404 and "no invoice" in error_of(r)
    r = op.post(
        "/operator/billing/tariffs",
        {"code": unique("bad"), "name": "Bad", "kind": "free", "limits": "{not json"},
    )
    assert r.status_code == 400 and "limits is not valid JSON" in error_of(r)
    r = op.post("/operator/billing/licenses", {"instance": str(instance_id), "tariff": code, "days": "-3"})
    assert r.status_code == 400 and "days must be a whole number" in error_of(r)
    assert "issued" in lee.get(invoice_path).text

    # Marking paid needs the bank reference, then a confirmation (issue 13, item 11); until
    # confirmed nothing is recorded.
    op.get("/operator/billing")
    r = op.post(f"/operator/billing/invoices/{invoice_id}/paid", {"reference": " "})
    assert r.status_code == 400 and "bank reference" in error_of(r)
    r = op.post(f"/operator/billing/invoices/{invoice_id}/paid", {"reference": "", "confirm": "yes"})
    assert r.status_code == 400 and "bank reference" in error_of(r)
    r = op.post(f"/operator/billing/invoices/{invoice_id}/paid", {"reference": "BANK-42"})
    assert r.status_code == 200 and 'id="confirm-mark-paid"' in r.text and "BANK-42" in r.text
    assert "issued" in lee.get(invoice_path).text

    # The operator records the payment: the license waits for tomorrow.
    r = op.post(f"/operator/billing/invoices/{invoice_id}/paid", {"reference": "BANK-42", "confirm": "yes"})
    assert r.status_code == 303, error_of(r)
    section = lee.get("/billing").text
    assert re.search(rf'id="license-{instance_id}" data-state="(\w+)"', section)
    assert "BANK-42" in section and f"Tariff {code}" in section
    r = op.post(f"/operator/billing/invoices/{invoice_id}/paid", {"reference": "BANK-43", "confirm": "yes"})
    assert r.status_code == 409 and error_of(r)


def test_team_roles_and_the_json_api(server: Server) -> None:
    op = operator(server)
    code = paid_tariff(op, "5.00")
    owner_name = unique("own")
    owner, password = new_user(server, owner_name)
    instance_id = new_instance(owner)
    owner.get("/billing")
    assert owner.post("/billing/buy", {"instance": str(instance_id), "tariff": code}).status_code == 303
    number = invoices_of(owner)[0]

    admin, _ = join_team(server, owner, "admin")
    viewer, _ = join_team(server, owner, "viewer")
    developer, _ = join_team(server, owner, "developer")
    assert number in admin.get("/billing").text  # the team's billing, not the member's own
    for member in (viewer, developer):
        assert member.get("/billing").status_code == 403
        assert "/console/billing" not in member.get("/").text  # no menu entry either

    # The JSON API: the owner sees the tenant's invoices; a wrong password is journalled.
    api = f"{server.url}/api/v1/invoices"
    mine = httpx.get(api, auth=(owner_name, password), timeout=30)
    assert [i["number"] for i in mine.json()["invoices"]] == [number]
    wrong = httpx.get(api, auth=(owner_name, password + "x"), timeout=30)
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Basic")
    events = owner.events()
    assert any(e["kind"] == "login_failed" and "HTTP Basic" in e["detail"] for e in events), events


def test_desk_rules_promo_codes_grants_and_a_transfer(server: Server) -> None:
    op = operator(server)
    code = paid_tariff(op, "40.00")
    promo = unique("P").upper()
    op.get("/operator/billing")
    r = op.post(
        "/operator/billing/rules",
        {"name": "Spring promo", "kind": "percent", "effect": "discount", "value": "25", "promo": promo},
    )
    assert r.status_code == 303, error_of(r)
    r = op.post("/operator/billing/rules", {"name": "Broken", "kind": "volume", "tiers": "[1, 2]"})
    assert r.status_code == 400 and "tiers must be a JSON list" in error_of(r)

    giver_name, receiver_name = unique("giv"), unique("rec")
    giver, _ = new_user(server, giver_name)
    receiver, _ = new_user(server, receiver_name)
    instance_id = new_instance(giver)

    # The promo code's rule is named on the invoice line that it changed.
    giver.get("/billing")
    r = giver.post("/billing/buy", {"instance": str(instance_id), "tariff": code, "promo": promo.lower()})
    assert r.status_code == 303, error_of(r)
    invoice = giver.get(r.headers["location"].split("/console", 1)[1]).text
    assert "30.00 EUR" in invoice and "Spring promo" in invoice and "was 40.00" in invoice

    # The operator grants a license by hand; the giver offers it to the receiver.
    op.get("/operator/billing")
    r = op.post("/operator/billing/licenses", {"instance": str(instance_id), "tariff": code, "days": "30"})
    assert r.status_code == 303, error_of(r)
    license_id = re.search(r"License (\d+) granted", html.unescape(op.get("/operator/billing").text))
    section = giver.get("/billing").text
    offered = re.findall(r'name="license" value="(\d+)"', section)
    assert license_id and offered == [license_id.group(1)], section
    r = giver.post("/billing/transfers", {"license": offered[0], "to": receiver_name})
    assert r.status_code == 303, error_of(r)
    r = giver.post("/billing/transfers", {"license": offered[0], "to": receiver_name})
    assert r.status_code == 409 and "pending transfer" in error_of(r)

    # Not yet approved: the receiver cannot accept.
    transfer_id = re.findall(r"/operator/billing/transfers/(\d+)/approve", op.get("/operator/billing").text)[
        -1
    ]
    receiver.get("/billing")
    r = receiver.post(f"/billing/transfers/{transfer_id}/accept")
    assert r.status_code == 409 and "approves it first" in error_of(r)
    op.get("/operator/billing")
    assert op.post(f"/operator/billing/transfers/{transfer_id}/approve").status_code == 303
    assert op.post(f"/operator/billing/transfers/{transfer_id}/approve").status_code == 409
    assert giver.post(f"/billing/transfers/{transfer_id}/accept").status_code == 404  # not theirs to accept
    section = receiver.get("/billing").text
    assert f"/billing/transfers/{transfer_id}/accept" in section
    assert receiver.post(f"/billing/transfers/{transfer_id}/accept").status_code == 303

    # The license and its instance moved; a license that arrived by transfer is never offered again.
    section = receiver.get("/billing").text
    assert f'id="license-{instance_id}"' in section and "received by transfer" in section
    assert 'name="license"' not in section
    assert f'id="license-{instance_id}"' not in giver.get("/billing").text


def test_console_sending_obeys_the_license(server: Server) -> None:
    op = operator(server)
    code = unique("free")
    op.get("/operator/billing")
    r = op.post(
        "/operator/billing/tariffs",
        {"code": code, "name": "Tiny", "kind": "free", "limits": '{"correspondents": 1}', "public": "on"},
    )
    assert r.status_code == 303, error_of(r)
    lee, _ = new_user(server, unique("tiny"))
    instance_id = new_instance(lee)
    lee.get("/billing")
    assert lee.post(f"/billing/instances/{instance_id}/start", {"tariff": code}).status_code == 303

    def send(chat: str) -> str:
        lee.get(f"/instances/{instance_id}")
        r = lee.post(f"/instances/{instance_id}/send", {"chat": chat, "message": "hello"})
        assert r.status_code == 303
        found = re.search(r'class="(?:flash|error)"[^>]*>([^<]*)<', lee.get(f"/instances/{instance_id}").text)
        return html.unescape(found.group(1)) if found else ""

    assert send("79994040001") == "Message queued."
    assert send("79994040002") == "Not sent: the license allows 1 correspondent a month, all used."
    assert send("79994040001") == "Message queued."  # the allowed correspondent still works

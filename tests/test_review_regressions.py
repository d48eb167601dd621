"""Regression tests for what a review of the billing, customer, screening and scanning code found:
each case once gave a 500, a stall, a double send or a leak across tenants."""

from __future__ import annotations

import html
import re
import socketserver
import threading
import time
from typing import Any

import httpx

from console_client import Console, new_user
from harness import Server, free_port
from sandbox_kit import wait_until


def unique(prefix: str) -> str:
    import uuid

    return f"{prefix}{uuid.uuid4().hex[:8]}"


def error_of(r: httpx.Response) -> str:
    """The refusal as the page shows it: the top line, then each field's error."""
    found = re.search(r'class="error"[^>]*>([^<]*)<', r.text)
    fields = re.findall(r'class="field-error" id="[^"]+-error"[^>]*>([^<]*)<', r.text)
    return html.unescape(" ".join(([found.group(1)] if found else []) + fields))


def operator(srv: Server) -> Console:
    op = Console(srv)
    assert op.login(srv.demo["operator"]["username"], srv.demo["operator"]["password"]).status_code == 303
    return op


def upload(console: Console, text: str) -> httpx.Response:
    console.get("/customers")
    return console.http.post(
        "/console/customers/import",
        data={"csrf": console.csrf},
        files={"file": ("c.csv", text.encode(), "text/csv")},
    )


def test_csv_edge_cases_are_400s_or_parsed(server: Server) -> None:
    lee, _ = new_user(server, unique("csv"))
    # Bare CR line endings ("CSV (Macintosh)") parse.
    assert upload(lee, "phone,name\r79995050001,Mac One\r79995050002,Mac Two\r").status_code == 303
    page = lee.get("/customers").text
    assert "Mac One" in page and "Mac Two" in page
    # A CR inside an unquoted field and an oversized field are clear refusals, not 500s.
    r = upload(lee, "phone,name\n79995050003,ab\rcd\n")
    assert r.status_code in (303, 400), r.status_code
    r = upload(lee, 'phone,name\n79995050004,"' + "x" * 200_000 + '"\n')
    assert r.status_code == 400 and "line" in error_of(r)
    # Digits of other scripts are not phone numbers.
    lee.get("/customers")
    r = lee.post("/customers", {"phone": "７９９９０００１１２２"})
    assert r.status_code == 400 and "7 to 15 digits" in error_of(r)
    # Formulas come back escaped in the export.
    assert upload(lee, 'phone,name\n79995050005,"=HYPERLINK(""http://x"")"\n').status_code == 303
    assert "'=HYPERLINK" in lee.get("/customers/export.csv").text


def test_unicode_digits_in_ids_are_not_found(server: Server) -> None:
    lee, _ = new_user(server, unique("uni"))
    for path in ("/customers/²", "/campaigns/²", "/billing/invoices/²", "/billing/instances/²/change"):
        assert lee.get(path).status_code == 404, path
    assert Console(server).get("/unsubscribe/².abc").status_code == 404


def test_screening_survives_odd_links_and_refuses_bad_patterns(make_server: Any) -> None:
    srv: Server = make_server()
    op = operator(srv)
    op.get("/operator/screening")
    r = op.post("/operator/screening/rules", {"kind": "pattern", "value": "spam|", "action": "block"})
    assert r.status_code == 400 and "empty text" in error_of(r)
    r = op.post("/operator/screening/rules", {"kind": "pattern", "value": r"(a)\1", "action": "block"})
    assert r.status_code == 400 and "RE2" in error_of(r)
    for form in (
        {"kind": "pattern", "value": "(a+)+$", "action": "review", "note": "nested"},
        {"kind": "domain", "value": "evil.example", "action": "block", "note": "bad host"},
    ):
        assert op.post("/operator/screening/rules", form).status_code == 303
    api = srv.api(srv.instance(0))
    # A malformed URL is not a 500; a pathological text is screened in linear time.
    assert api.sending.sendMessage("79990000002@c.us", "see http://[evil").code == 200
    assert api.sending.sendMessage("79990000002@c.us", "a" * 5000 + "!").code == 200
    # Domain rules see links without a scheme, percent-escapes and look-alike dots.
    for text in (
        "see evil.example/x",
        "https://evil%2Eexample/",
        "http://evil\u3002example/",
        "ftp://evil.example/",
    ):
        refused = api.sending.sendMessage("79990000002@c.us", text)
        assert refused.code == 400 and "bad host" in refused.error, text


class _Silent(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        time.sleep(30)  # accepts the connection, never reads or answers


def test_a_scanner_that_stops_answering_refuses_in_bounded_time(make_server: Any) -> None:
    silent = socketserver.ThreadingTCPServer(("127.0.0.1", free_port()), _Silent)
    silent.daemon_threads = True
    threading.Thread(target=silent.serve_forever, daemon=True).start()
    try:
        srv: Server = make_server(
            env={
                "VERDIGRIS_CLAMAV_ADDRESS": f"127.0.0.1:{silent.server_address[1]}",
                "VERDIGRIS_CLAMAV_TIMEOUT_SECONDS": "2",
            }
        )
        inst = srv.instance(0)
        url = f"{srv.url}/waInstance{inst['idInstance']}/uploadFile/{inst['apiTokenInstance']}"
        r = httpx.post(url, content=b"z" * 4_000_000, headers={"GA-Filename": "big.bin"}, timeout=60)
        assert r.status_code == 503 and "malware" in r.json()["message"]
    finally:
        silent.shutdown()
        silent.server_close()


def test_billing_inputs_out_of_range_are_refused(server: Server) -> None:
    op = operator(server)
    op.get("/operator/billing")
    code = unique("huge")
    for form, message in [
        ({"code": code, "name": "X", "kind": "paid", "price": "1e9999", "currency": "USD"}, "too large"),
        (
            {"code": code, "name": "X", "kind": "paid", "price": "10", "period_count": "999999999"},
            "at most 1200",
        ),
        ({"code": code, "name": "X", "kind": "trial", "trial_days": "99999999"}, "at most 3650"),
    ]:
        r = op.post("/operator/billing/tariffs", form)
        assert r.status_code == 400 and message in error_of(r), (form, r.status_code, error_of(r))
    r = op.post(
        "/operator/billing/licenses", {"instance": "7700000001", "tariff": "business", "days": "999999999"}
    )
    assert r.status_code == 400 and "days must be" in error_of(r)
    r = op.post(
        "/operator/billing/licenses",
        {"instance": "7700000001", "tariff": "business", "starts_on": "9999-12-31"},
    )
    assert r.status_code == 400 and "dates from" in error_of(r)
    assert op.get("/operator/billing?from=0001-01-01&to=9999-12-31").status_code == 400
    assert code not in op.get("/operator/billing").text


def test_pause_resume_storm_never_sends_twice(make_server: Any) -> None:
    srv: Server = make_server(env={"VERDIGRIS_SEND_DELAY_MIN_MS": "0"})
    name = unique("storm")
    owner, _ = new_user(srv, name)
    shop = "79996060000"
    srv.new_phone(shop)
    inst = srv.new_instance("--link", shop, "--account", name)
    phones = [f"7999606{n:04d}" for n in range(1, 13)]
    lines = "\n".join(f"{p},yes,form" for p in phones)
    assert upload(owner, "phone,consent,consent_source\n" + lines + "\n").status_code == 303
    for p in phones:
        srv.new_phone(p)
    owner.get("/campaigns")
    r = owner.post(
        "/campaigns", {"instance": str(inst["idInstance"]), "name": "storm", "text": "once", "interval": "1"}
    )
    path = r.headers["location"].split("/console", 1)[1]
    owner.get(path)
    assert owner.post(path + "/start").status_code == 303

    def hammer() -> None:
        client = Console(srv)
        client.http.cookies.update(owner.http.cookies)
        client.csrf = owner.csrf
        for _ in range(25):
            client.post(path + "/pause")
            client.post(path + "/resume")

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    owner.get(path)
    owner.post(path + "/resume")
    wait_until(lambda: 'id="campaign-status">done<' in owner.get(path).text, timeout=120)
    for p in phones:
        texts = [
            m["content"].get("text", "")
            for m in srv.sandbox("GET", f"/phones/{p}/messages", params={"direction": "incoming"}).json()
        ]
        assert len(texts) == 1, (p, texts)


def test_a_campaign_stops_when_its_instance_changes_hands(make_server: Any) -> None:
    srv: Server = make_server(env={"VERDIGRIS_SANDBOX_CLOCK": "true"})
    op = operator(srv)
    giver_name, receiver_name = unique("giv"), unique("rec")
    giver, _ = new_user(srv, giver_name)
    receiver, _ = new_user(srv, receiver_name)
    shop = "79997070000"
    srv.new_phone(shop)
    inst = srv.new_instance("--link", shop, "--account", giver_name)
    phones = ["79997070001", "79997070002"]
    for p in phones:
        srv.new_phone(p)
    assert (
        upload(
            giver, "phone,consent,consent_source\n" + "\n".join(f"{p},yes,form" for p in phones) + "\n"
        ).status_code
        == 303
    )
    giver.get("/campaigns")
    r = giver.post(
        "/campaigns", {"instance": str(inst["idInstance"]), "name": "c", "text": "offer", "interval": "3600"}
    )
    path = r.headers["location"].split("/console", 1)[1]
    giver.get(path)
    assert giver.post(path + "/start").status_code == 303
    wait_until(lambda: srv.sandbox("GET", f"/phones/{phones[0]}/messages").json())

    # The instance's license moves to another licensee (grant, transfer, approve, accept).
    op.get("/operator/billing")
    assert (
        op.post(
            "/operator/billing/licenses",
            {"instance": str(inst["idInstance"]), "tariff": "business", "days": "30"},
        ).status_code
        == 303
    )
    section = giver.get("/billing").text
    license_id = re.findall(r'name="license" value="(\d+)"', section)[0]
    assert giver.post("/billing/transfers", {"license": license_id, "to": receiver_name}).status_code == 303
    transfer_id = re.findall(r"/operator/billing/transfers/(\d+)/approve", op.get("/operator/billing").text)[
        -1
    ]
    assert op.post(f"/operator/billing/transfers/{transfer_id}/approve").status_code == 303
    receiver.get("/billing")
    assert receiver.post(f"/billing/transfers/{transfer_id}/accept").status_code == 303

    # The next step finds the instance is no longer the giver's: paused, nothing more sent.
    srv.sandbox("POST", "/clock", json={"advanceSeconds": 3700})
    wait_until(lambda: 'id="campaign-status">paused<' in giver.get(path).text)
    assert "no longer belongs to this team" in html.unescape(giver.get(path).text)
    assert srv.sandbox("GET", f"/phones/{phones[1]}/messages").json() == []
    giver.get(path)
    r = giver.post(path + "/resume")
    assert r.status_code == 409 and "no longer belongs" in error_of(r)

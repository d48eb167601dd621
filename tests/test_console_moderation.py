"""T-16 and T-17 through a real server: the operator's measures on accounts as the console, the
official SDK and raw HTTP see them; irreversible deletion (the whole store and the media folder
are scanned afterwards); agreement versions that users must accept before anything else."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

import verdigris.models  # noqa: F401  (every table in the metadata)
from console_client import Console, new_user
from harness import Server, cli
from verdigris.store.db import metadata
from webhook_receivers import ScriptedReceiver

BLOCK_REASON = "fraud complaint no. 12"


def acts(method: str) -> bool:
    """Whether the wire method acts on the network (the method registry says; the router asks)."""
    from verdigris.greenapi import methods  # noqa: F401  (registers every wire method)
    from verdigris.greenapi.registry import REGISTRY

    return REGISTRY[method.lower()].acts


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def operator(server: Server) -> Console:
    console = Console(server, user_agent="operator-agent")
    creds = server.demo["operator"]
    assert console.login(creds["username"], creds["password"]).status_code == 303
    return console


def account_id(op: Console, username: str) -> int:
    page = op.get(f"/operator/accounts?q={username}").text
    found = re.search(rf'/console/operator/accounts/(\d+)">{re.escape(username)}<', page)
    assert found, page
    return int(found.group(1))


def username_of(server: Server, password: str) -> str:
    for path in sorted((server.data_dir / "outbox").glob("*.eml"), reverse=True):
        text = path.read_text(errors="replace")
        if f"password: {password}" in text:
            return text.split("username: ", 1)[1].split()[0]
    raise AssertionError("credentials mail not found")


def measure(op: Console, target: int, action: str, reason: str, **extra: str) -> httpx.Response:
    op.get(f"/operator/accounts/{target}")
    return op.post(f"/operator/accounts/{target}/{action}", {"reason": reason, **extra})


def phone_texts(server: Server, number: str) -> list[str]:
    rows = server.sandbox("GET", f"/phones/{number}/messages").json()
    return [m["content"].get("text", "") for m in rows if m.get("direction") == "incoming"]


def wait_until(check: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_block_restrict_suspend_unblock(server: Server) -> None:
    name = unique("mod")
    user, password = new_user(server, name)
    owner_phone, friend = f"7998{uuid.uuid4().int % 10**7:07d}", f"7997{uuid.uuid4().int % 10**7:07d}"
    server.new_phone(owner_phone)
    server.new_phone(friend)
    inst = server.new_instance("--account", name)  # not linked yet: what it sends waits in its queue
    api = server.api(inst)
    code = server.wire(inst, "getAuthorizationCode", verb="POST", json={"phoneNumber": int(owner_phone)})
    assert code.status_code == 200, code.text
    queued = api.sending.sendMessage(f"{friend}@c.us", "queued before the block")
    assert queued.code == 200, queued.error
    receiver = ScriptedReceiver().start()
    assert api.account.setSettings({"webhookUrl": receiver.url}).code == 200
    op = operator(server)
    target = account_id(op, name)

    # Restricted: reading works, sending is refused (API and console), the user stays logged in.
    assert measure(op, target, "restrict", "spam reports").status_code == 303
    refused = api.sending.sendMessage(f"{friend}@c.us", "while restricted")
    assert refused.code == 403
    assert "restricted by the operator to reading" in json.loads(refused.error)["message"]
    assert api.account.getStateInstance().code == 200
    assert user.logged_in()
    user.get(f"/instances/{inst['idInstance']}")
    r = user.post(f"/instances/{inst['idInstance']}/send", {"chat": friend, "message": "console"})
    assert r.status_code == 403 and "spam reports" in r.text

    # Blocked: sessions end, no login, every API call answers 403 in the wire's error format.
    assert measure(op, target, "block", BLOCK_REASON).status_code == 303
    assert not user.logged_in()
    again = Console(server)
    r = again.login(name, password)
    assert r.status_code == 401 and f"blocked by the operator: {BLOCK_REASON}" in r.text
    billing = httpx.get(f"{server.url}/api/v1/billing", auth=(name, password), timeout=30)
    assert billing.status_code == 403 and BLOCK_REASON in billing.json()["message"]
    raw = server.wire(inst, "getStateInstance")
    assert raw.status_code == 403
    body = raw.json()
    assert body["statusCode"] == 403 and body["path"].startswith(f"/waInstance{inst['idInstance']}/")
    assert body["message"] == f"Forbidden. The account is blocked by the operator: {BLOCK_REASON}"
    sdk = api.sending.sendMessage(f"{friend}@c.us", "while blocked")
    assert sdk.code == 403 and BLOCK_REASON in json.loads(sdk.error)["message"]
    # The owner links the phone (the sandbox plays the phone): the blocked instance sends nothing.
    assert (
        server.sandbox("POST", f"/phones/{owner_phone}/pair", json={"code": code.json()["code"]}).status_code
        == 200
    )
    incoming = {"chatId": f"{owner_phone}@c.us", "message": "arrives while blocked"}
    assert server.sandbox("POST", f"/phones/{friend}/messages", json=incoming).status_code == 200
    time.sleep(1.0)
    assert "queued before the block" not in phone_texts(server, friend)
    assert "arrives while blocked" not in receiver.received.texts()  # kept in the queue, not pushed

    # Unblocked: the queue goes out (nothing was lost), login and the API work again.
    assert measure(op, target, "unblock", "complaint withdrawn").status_code == 303
    wait_until(lambda: "queued before the block" in phone_texts(server, friend))
    wait_until(lambda: "arrives while blocked" in receiver.received.texts())
    receiver.stop()
    assert again.login(name, password).status_code == 303
    assert api.account.getStateInstance().code == 200
    kinds = [e["kind"] for e in again.events()]
    assert "moderation_measure" in kinds and "moderation_lifted" in kinds

    # Suspended until tomorrow: like blocked, and the date is told; a past date is refused.
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert measure(op, target, "suspend", "payment dispute", until="2020-01-01").status_code == 400
    assert measure(op, target, "suspend", "payment dispute", until=tomorrow).status_code == 303
    assert not again.logged_in()
    message = server.wire(inst, "getSettings").json()["message"]
    assert message.startswith("Forbidden. The account is suspended by the operator until ")
    assert message.endswith(": payment dispute")
    assert "suspended by the operator until" in Console(server).login(name, password).text

    # Every action has a reason; without one nothing changes.
    r = measure(op, target, "unblock", "")
    assert r.status_code == 400 and "reason" in r.text
    assert server.wire(inst, "getSettings").status_code == 403
    assert measure(op, target, "unblock", "dispute settled").status_code == 303
    assert server.wire(inst, "getSettings").status_code == 200

    # The audit log shows every step with its reason and operator.
    page = op.get(f"/operator/accounts/{target}").text
    actions = re.findall(r'<td class="action">(\w+)</td>', page)
    assert actions == ["unblocked", "suspended", "unblocked", "blocked", "restricted"]
    for reason in ("spam reports", BLOCK_REASON, "complaint withdrawn", "payment dispute", "dispute settled"):
        assert reason in page
    assert "operator" in op.get("/operator/moderation").text
    assert op.get("/operator/accounts?q=%00").status_code == 200  # odd search text finds nothing

    # Only the operator moderates.
    assert again.login(name, password).status_code == 303
    assert again.get("/operator/accounts").status_code == 403
    assert again.post(f"/operator/accounts/{target}/block", {"reason": "self"}).status_code == 403


def test_partner_api_and_team_members_of_a_blocked_account(make_server: Any) -> None:
    srv: Server = make_server()
    op = operator(srv)
    token = srv.demo["partnerToken"]
    listed = httpx.get(f"{srv.url}/partner/getInstances/{token}", timeout=30)
    assert listed.status_code == 200
    demo_id = account_id(op, "demo")
    assert measure(op, demo_id, "block", "chargeback").status_code == 303
    refused = httpx.get(f"{srv.url}/partner/getInstances/{token}", timeout=30)
    assert refused.status_code == 403 and "chargeback" in refused.json()["message"]
    assert srv.wire(srv.instance(0), "getStateInstance").status_code == 403
    assert srv.wire(srv.instance(1), "getStateInstance").status_code == 403
    # The operator cannot block operators (nor itself).
    own = account_id(op, "operator")
    r = measure(op, own, "block", "oops")
    assert r.status_code == 400 and "operator accounts are not moderated" in r.text.lower()
    assert measure(op, demo_id, "unblock", "paid").status_code == 303
    assert httpx.get(f"{srv.url}/partner/getInstances/{token}", timeout=30).status_code == 200


# --- deletion ---------------------------------------------------------------------------------

# Sandbox tables model the phones of people outside the platform (what they received stays with
# them, like a delivered SMS); they are checked for the account's identity, not for its messages.
PHONE_SIDE = {
    "sandbox_phones",
    "sandbox_phone_messages",
    "sandbox_statuses",
    "sandbox_status_views",
    "sandbox_groups",
    "sandbox_group_members",
    "sandbox_group_events",
}
ACCOUNT_COLUMNS = {"account_id", "tenant_id", "from_account", "to_account"}


def scan_store(
    database_url: str, account_ids: set[int], instance_ids: set[int], identity: set[str], content: set[str]
) -> list[str]:
    """Every place in every table that still refers to the account: ``table.column = value``."""

    async def run() -> list[str]:
        engine = create_async_engine(database_url)
        hits: list[str] = []
        try:
            async with engine.connect() as conn:
                for table in metadata.sorted_tables:
                    for row in (await conn.execute(select(table))).mappings():
                        for column, value in row.items():
                            where = f"{table.name}.{column} = {str(value)[:60]!r}"
                            if column in ACCOUNT_COLUMNS and value in account_ids:
                                hits.append(where)
                            elif column == "instance_id" and value in instance_ids:
                                hits.append(where)
                            elif table.name == "instances" and column == "id" and value in instance_ids:
                                hits.append(where)
                            elif table.name == "accounts" and column == "id" and value in account_ids:
                                hits.append(where)
                            elif isinstance(value, str):
                                markers = identity if table.name in PHONE_SIDE else identity | content
                                if any(m in value for m in markers):
                                    hits.append(where)
        finally:
            await engine.dispose()
        return hits

    return asyncio.run(run())


def database_url(srv: Server) -> str:
    return (
        srv.env.get("VERDIGRIS_DATABASE_URL") or f"sqlite+aiosqlite:///{srv.data_dir / 'verdigris.sqlite3'}"
    )


def test_operator_deletes_an_account_and_nothing_of_it_remains(make_server: Any, tmp_path: Path) -> None:
    srv: Server = make_server()
    name = unique("gone")
    email = f"{name}@example.test"
    user, password = new_user(srv, name)
    second = Console(srv, user_agent="second-device")
    assert second.login(name, password).status_code == 303
    # A team member (invited: an account row, a link and a mail).
    member_email = f"{unique('member')}@example.test"
    user.get("/team")
    assert user.post("/team/invite", {"email": member_email, "role": "developer"}).status_code == 303
    # Instances: one linked and busy, one created and deleted in the console (its row is kept).
    phone, friend = "79995550001", "79995550002"
    srv.new_phone(friend)
    inst = srv.new_instance("--account", name, "--link", phone)
    page = user.get("/")
    assert user.post("/instances", {"name": "short-lived"}).status_code == 303
    spare_id = max(int(i) for i in re.findall(r"/console/instances/(\d+)", user.get("/").text))
    user.get(f"/instances/{spare_id}")
    assert user.post(f"/instances/{spare_id}/delete", {"confirm": str(spare_id)}).status_code == 303
    assert page.status_code == 200
    api = srv.api(inst)
    # Messages both ways, a file, notifications left in the queue, a failing webhook.
    out_text, in_text = f"outgoing {unique('txt')}", f"incoming {unique('txt')}"
    assert api.sending.sendMessage(f"{friend}@c.us", out_text).code == 200
    srv.sandbox("POST", f"/phones/{friend}/messages", json={"chatId": f"{phone}@c.us", "message": in_text})
    upload = tmp_path / "evidence.txt"
    upload.write_text("file of the doomed account")
    sent_file = api.sending.sendFileByUpload(f"{friend}@c.us", str(upload))
    assert sent_file.code == 200, sent_file.error
    file_url = sent_file.data["urlFile"]
    assert httpx.get(file_url, timeout=30).status_code == 200
    hook = api.account.setSettings({"webhookUrl": "http://127.0.0.1:9/hook"})
    assert hook.code == 200, hook.error
    wait_until(lambda: out_text in phone_texts(srv, friend))
    # A license and an invoice (billing API, as the licensee), a partner token.
    creds = (srv.demo["operator"]["username"], srv.demo["operator"]["password"])
    tariff = unique("t")
    r = httpx.post(
        f"{srv.url}/api/v1/operator/tariffs",
        auth=creds,
        json={"code": tariff, "name": "Doomed plan", "price": "10.00", "currency": "USD"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    r = httpx.post(
        f"{srv.url}/api/v1/operator/licenses",
        auth=creds,
        json={"instanceId": inst["idInstance"], "tariff": tariff, "days": 30},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    r = httpx.post(
        f"{srv.url}/api/v1/invoices",
        auth=(name, password),
        json={"items": [{"instanceId": inst["idInstance"], "tariff": tariff}]},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    # A second invoice, paid: revenue of the operator (it must survive the erasure, anonymised).
    r = httpx.post(
        f"{srv.url}/api/v1/invoices",
        auth=(name, password),
        json={"items": [{"instanceId": inst["idInstance"], "tariff": tariff}]},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    paid_id, paid_number = r.json()["id"], r.json()["number"]
    r = httpx.post(
        f"{srv.url}/api/v1/operator/invoices/{paid_id}/mark-paid",
        auth=creds,
        json={"reference": "bank-transfer-77"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    revenue_before = httpx.get(f"{srv.url}/api/v1/operator/revenue", auth=creds, timeout=30).json()
    partner = cli(srv.data_dir, "partner-token", "--account", name, env=srv.env)["partnerToken"]
    # The customer database: a tagged contact with consent and a draft campaign to its tag.
    tag = unique("tag")
    user.get("/customers")
    form = {
        "phone": "79995550009",
        "name": "Dana Doomed",
        "tags": tag,
        "consent": "on",
        "consent_source": "form",
    }
    assert user.post("/customers", form).status_code == 303
    user.get("/campaigns")
    campaign = {
        "instance": str(inst["idInstance"]),
        "name": "Sale",
        "tag": tag,
        "text": "Hi {name}",
        "interval": "60",
    }
    assert user.post("/campaigns", campaign).status_code == 303

    op = operator(srv)
    target = account_id(op, name)
    ids_page = op.get(f"/operator/accounts/{target}").text
    member_ids = {int(m) for m in re.findall(r'/console/operator/accounts/(\d+)">invited-', ids_page)}
    assert len(member_ids) == 1  # the invited member (its username is generated)
    account_ids = {target} | member_ids
    instance_ids = {int(inst["idInstance"]), spare_id}
    identity = {name, email, member_email, inst["apiTokenInstance"], partner}
    content = {out_text, in_text, "file of the doomed account", tag, "Dana Doomed"} | {
        str(i) for i in instance_ids
    }
    media_root = srv.data_dir / "media"

    # The scanner finds the account everywhere before the deletion (so it can fail).
    before = scan_store(database_url(srv), account_ids, instance_ids, identity, content)
    touched = {hit.split(".", 1)[0] for hit in before}
    for table in (
        "accounts",
        "sessions",
        "consents",
        "account_links",
        "auth_events",
        "partner_tokens",
        "instances",
        "messages",
        "notifications",
        "media_files",
        "licenses",
        "invoices",
        "invoice_lines",
        "contacts",
        "contact_tags",
        "campaigns",
    ):
        assert table in touched, (table, sorted(touched))
    assert (media_root / str(inst["idInstance"])).is_dir()

    # Deleting needs a reason and the username typed; a wrong one changes nothing.
    op.get(f"/operator/accounts/{target}")
    r = op.post(f"/operator/accounts/{target}/delete", {"reason": "court order 7", "confirm": "nope"})
    assert r.status_code == 400 and "username to confirm the deletion" in r.text
    r = op.post(f"/operator/accounts/{target}/delete", {"reason": "court order 7", "confirm": name})
    assert r.status_code == 303 and r.headers["location"] == "/console/operator/moderation"
    log = op.get("/operator/moderation").text
    reference = re.search(r"<td>(erased-[0-9a-f]{10})</td>", log)
    assert reference and "court order 7" in log and name not in log

    left = scan_store(database_url(srv), account_ids, instance_ids, identity, content)
    assert left == [], left
    # The paid invoice and its payment stay (the period's revenue does not drop), anonymised.
    assert httpx.get(f"{srv.url}/api/v1/operator/revenue", auth=creds, timeout=30).json() == revenue_before
    kept = httpx.get(f"{srv.url}/api/v1/invoices/{paid_id}", auth=creds, timeout=30)
    assert kept.status_code == 200, kept.text
    invoice = kept.json()
    assert invoice["number"] == paid_number and invoice["status"] == "paid"
    assert invoice["buyer"]["username"] == reference.group(1) and invoice["accountId"] == 0
    assert [p["reference"] for p in invoice["payments"]] == ["bank-transfer-77"]
    assert all(line["instanceId"] is None for line in invoice["lines"])
    leftovers = [p for p in media_root.rglob("*") if any(str(i) in p.name for i in instance_ids)]
    assert leftovers == [], leftovers
    outbox = srv.data_dir / "outbox"
    assert not [p for p in outbox.glob("*") if email in p.read_text(errors="replace")]
    # Nothing of it answers: files, tokens, sessions, logins.
    assert httpx.get(file_url, timeout=30).status_code == 404
    assert srv.wire(inst, "getStateInstance").status_code == 403
    assert httpx.get(f"{srv.url}/partner/getInstances/{partner}", timeout=30).json() == {
        "code": 401,
        "description": "Unauthorized",
    }
    assert not user.logged_in() and not second.logged_in()
    assert Console(srv).login(name, password).status_code == 401
    assert op.get(f"/operator/accounts/{target}").status_code == 404
    # What the friend received stays on the friend's phone.
    assert out_text in phone_texts(srv, friend)


# --- agreement versions (T-17) ----------------------------------------------------------------


def test_new_agreement_version_must_be_accepted_before_anything_else(make_server: Any) -> None:
    srv: Server = make_server(
        env={
            "VERDIGRIS_OPERATOR_LEGAL_NAME": "Terms Test Operator Ltd",
            "VERDIGRIS_OPERATOR_EMAIL": "legal@op.test",
        }
    )
    public = httpx.get(f"{srv.url}/console/agreement", timeout=30).text
    assert "Terms Test Operator Ltd" in public and "legal@op.test" in public
    name = unique("terms")
    user, password = new_user(srv, name)
    assert user.get("/").status_code == 200  # nothing to accept yet

    op = operator(srv)
    op.get("/operator/agreements")
    r = op.post("/operator/agreements", {"version": "bad version!", "title": "T", "text": "x"})
    assert r.status_code == 400 and "version:" in r.text
    r = op.post(
        "/operator/agreements",
        {
            "version": "2026-12",
            "title": "User agreement",
            "text": "Clause one.\nClause two.",
            "requires_acceptance": "on",
        },
    )
    assert r.status_code == 303, r.text
    op.get("/operator/agreements")
    r = op.post("/operator/agreements", {"version": "2026-12", "title": "Again", "text": "changed"})
    assert r.status_code == 400 and "already published" in r.text
    assert op.get("/").status_code == 200  # the operator is not asked

    public = httpx.get(f"{srv.url}/console/agreement", timeout=30).text
    assert 'id="agreement-version">2026-12<' in public and "Clause two." in public
    assert "Terms Test Operator Ltd" in public

    # Every page of the logged-in user now leads to the accept page first.
    for path in ("/", "/account", f"/instances/{srv.instance(0)['idInstance']}"):
        r = user.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith("/console/agreement/accept"), path
    assert user.post("/instances", {"name": "sneaky"}).headers["location"] == "/console/agreement/accept"
    page = user.get("/agreement/accept?next=/console/account")
    assert page.status_code == 200 and "Clause one." in page.text
    r = user.post("/agreement/accept", {"version": "2026-12", "next": "/console/account"})
    assert r.status_code == 400  # the box was not ticked
    r = user.post("/agreement/accept", {"version": "2026-12", "next": "/console/account", "accept": "on"})
    assert r.status_code == 303 and r.headers["location"] == "/console/account"
    account_page = user.get("/account")
    assert account_page.status_code == 200
    assert re.search(r"<td>agreement</td><td>2026-12</td><td>yes</td>", account_page.text)
    assert "agreement_accepted" in [e["kind"] for e in user.events()]

    # A version that does not require acceptance asks nothing; the next login after a required one does.
    op.get("/operator/agreements")
    assert (
        op.post(
            "/operator/agreements", {"version": "2026-12a", "title": "Typo fix", "text": "Clause one!"}
        ).status_code
        == 303
    )
    assert user.get("/").status_code == 200
    op.get("/operator/agreements")
    assert (
        op.post(
            "/operator/agreements",
            {
                "version": "2027-01",
                "title": "User agreement",
                "text": "New terms.",
                "requires_acceptance": "on",
            },
        ).status_code
        == 303
    )
    fresh = Console(srv)
    r = fresh.login(name, password)
    assert r.status_code == 303
    r = fresh.http.get(r.headers["location"])
    assert r.status_code == 303 and r.headers["location"].startswith("/console/agreement/accept")
    # Accepting an outdated version is refused (a newer one was published meanwhile).
    fresh.get("/agreement/accept")
    r = fresh.post("/agreement/accept", {"version": "2026-12", "accept": "on"})
    assert r.status_code == 409 and "New terms." in r.text
    assert fresh.post("/agreement/accept", {"version": "2027-01", "accept": "on"}).status_code == 303
    assert fresh.get("/").status_code == 200
    # The wire API keeps working meanwhile (continued use), and new users accept the current version.
    assert srv.wire(srv.instance(0), "getStateInstance").status_code == 200
    newcomer, _ = new_user(srv, unique("late"))
    assert newcomer.get("/").status_code == 200
    assert re.search(r"<td>agreement</td><td>2027-01</td>", newcomer.get("/account").text)
    versions = httpx.get(f"{srv.url}/console/agreement?version=2026-12", timeout=30).text
    assert "Clause two." in versions and "not the current version" in versions
    assert httpx.get(f"{srv.url}/console/agreement?version=nope", timeout=30).status_code == 404
    assert httpx.get(f"{srv.url}/console/agreement?version=%00", timeout=30).status_code == 404


# --- in process: the end of a suspension, measures on team members -------------------------------


def test_suspension_ends_by_itself_and_member_measures_stay_personal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from licensing_helpers import run
    from verdigris.accounts import journal
    from verdigris.accounts import service as accounts
    from verdigris.accounts import team as accounts_team
    from verdigris.compliance import moderation
    from verdigris.instances import service as instances

    origin = journal.Origin("127.0.0.1", "test")

    async def scenario(core: Any) -> None:
        op_id = await accounts.create_account(core, username="op", password="Op-Pass-123456", role="operator")
        owner_id = await accounts.create_account(
            core, username="owner", password="Owner-Pass-123456", role="licensee", email="o@example.test"
        )
        op = await accounts.get_account(core, op_id)
        owner = await accounts.get_account(core, owner_id)
        assert op is not None and owner is not None
        inst = await instances.create(core, account_id=owner_id)
        runtime = core.moderation
        start = moderation.now_ms()
        await moderation.apply(
            core, op, owner_id, moderation.SUSPENDED, "late payment", origin, until_ms=start + 60_000
        )
        refusal = runtime.wire_refusal(inst.account_id, acts("getSettings"))
        assert refusal and "suspended by the operator until" in refusal and not runtime.may_send(owner_id)
        # A minute later the suspension is over: the lookups see it at once, the sweep records it.
        monkeypatch.setattr(moderation, "now_ms", lambda: start + 61_000)
        assert runtime.wire_refusal(inst.account_id, acts("sendMessage")) is None
        assert await moderation.lift_ended(core) == 1
        entries = await moderation.log_entries(core, owner_id)
        assert [e["action"] for e in entries] == ["suspension_ended", "suspended"]
        assert entries[0]["operator"] == "(system)" and entries[0]["reason"] == "late payment"
        monkeypatch.undo()

        # A team member's measure is the member's own; the owner's covers the member too.
        member = await accounts_team.invite_member(core, owner, "m@example.test", "viewer", origin)
        await moderation.apply(core, op, member.id, moderation.BLOCKED, "shared password", origin)
        assert runtime.wire_refusal(owner_id, acts("sendMessage")) is None
        found = runtime.of(member)
        assert found is not None and found.reason == "shared password"
        assert runtime.of(owner) is None
        await moderation.lift(core, op, member.id, "new password set", origin)
        await moderation.apply(core, op, owner_id, moderation.RESTRICTED, "spam", origin)
        found = runtime.of(member)
        assert found is not None and found.kind == moderation.RESTRICTED
        assert runtime.wire_refusal(owner_id, acts("getSettings")) is None
        assert runtime.wire_refusal(owner_id, acts("sendMessage")) is not None

        # Deleting the member leaves the owner and its instance; the log keeps no name of the member.
        done = await moderation.delete_account(
            core, op, member.id, "left the company", member.username, origin
        )
        assert done.accounts == 1 and done.instances == 0
        assert await accounts.get_account(core, member.id) is None
        assert await accounts.get_account(core, owner_id) is not None
        assert await core.instances.get(inst.id) is not None
        rows = await moderation.log_entries(core)
        erased = [r for r in rows if r["target"] == done.reference]
        assert {r["action"] for r in erased} == {"blocked", "unblocked", "deleted"}
        assert all(r["account_id"] is None and "m@example.test" not in r["target"] for r in erased)
        # Operators are not moderated, and a reason is required.
        with pytest.raises(moderation.PolicyError):
            await moderation.apply(core, op, op_id, moderation.BLOCKED, "self", origin)
        with pytest.raises(moderation.PolicyError):
            await moderation.apply(core, op, owner_id, moderation.BLOCKED, " ", origin)

    run(tmp_path, scenario)

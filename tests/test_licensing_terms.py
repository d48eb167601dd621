"""Rows T-01..T-08 and T-27 of the terms, exercised on the services in-process with exact dates."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from licensing_helpers import Clock, instance, licensee, msk, notification_bodies, run
from verdigris.core import Core
from verdigris.licensing import billing, reports, service, transfers
from verdigris.licensing.enforce import Licensing
from verdigris.licensing.models import licenses, payments
from verdigris.licensing.pdf import render_invoice
from verdigris.licensing.service import BillingError
from verdigris.licensing.worker import LicensingWorker

PRO = {"code": "pro", "name": "Pro", "price": "30.00", "currency": "USD"}


async def admit(lic: Any, rec: Any, method: str, chat: str | None) -> Any:
    """Licensing.admit as the wire router calls it: the method registry says whether the method
    sends a message and whether it is allowed while expired."""
    from verdigris.greenapi import methods  # noqa: F401  (registers every wire method)
    from verdigris.greenapi.registry import REGISTRY

    spec = REGISTRY[method.lower()]
    return await lic.admit(rec, method, chat, sending=spec.sends_message, when_expired=spec.when_expired)


async def free_tariff(core: Core, **limits: Any) -> None:
    await service.publish_tariff(
        core,
        code="developer",
        name="Developer",
        price="0",
        currency="USD",
        kind="free",
        limits=limits or {"correspondents": 3},
    )


# --- T-01: free use with restrictions, and a trial ----------------------------------------------------


def test_t01_free_tier_correspondents_limit_466_and_notice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch, msk(2026, 5, 20, 12))

    async def scenario(core: Core) -> None:
        await free_tariff(core, correspondents=3, instancesPerAccount=1)
        owner = await licensee(core)
        rec = await instance(core, owner)
        await service.start_free(core, owner, rec.id, "developer", at_ms=clock.at)
        lic = core.licensing
        assert lic is not None
        chats = ["79990000011@c.us", "79990000012@c.us", "120363000000000001@g.us"]
        for chat in chats:
            assert await admit(lic, rec, "sendMessage", chat) is None
        assert await admit(lic, rec, "sendMessage", chats[0]) is None  # a known chat is fine
        refusal = await admit(lic, rec, "sendMessage", "79990000099@c.us")
        assert refusal is not None and not refusal.expired
        assert refusal.invoke is not None and refusal.correspondents is not None
        assert (
            refusal.invoke.method,
            refusal.invoke.used,
            refusal.invoke.total,
            refusal.invoke.exceeded,
        ) == (
            "sendmessage",
            4,
            0,
            False,
        )
        corr = refusal.correspondents
        assert (corr.method, corr.used, corr.total, corr.exceeded) == ("correspondents", 3, 3, True)
        assert ", ".join(chats) in corr.description
        # Handlers that parse their own (multipart) body ask for the chat separately.
        upload = await lic.admit_chat(rec, "sendFileByUpload", "79990000098@c.us")
        assert upload is not None and upload.correspondents is not None
        assert await lic.admit_chat(rec, "sendFileByUpload", chats[1]) is None
        # No side effect: the refused chat was not recorded, the refused call not counted.
        again = await admit(lic, rec, "sendMessage", "79990000099@c.us")
        assert again is not None and again.invoke is not None and again.invoke.used == 4
        # One quotaExceeded notification per limit and period, in the documented shape.
        bodies = await notification_bodies(core, rec.id, "quotaExceeded")
        assert len(bodies) == 1
        quota = bodies[0]["quotaData"]
        assert quota["method"] == "correspondents" and quota["status"] == "CORRESPONDENTS_QUOTA_EXCEEDED"
        assert (quota["used"], quota["total"]) == (3, 3)
        assert "from following chats: " + ", ".join(chats) in quota["description"]
        assert bodies[0]["instanceData"]["idInstance"] == rec.id
        # Other methods are not limited by correspondents.
        assert await admit(lic, rec, "getSettings", None) is None
        # The counters reset on the 1st of the month, 00:00 in the operator's zone.
        clock.at = msk(2026, 5, 31, 23, 59)
        assert await admit(lic, rec, "sendMessage", "79990000099@c.us") is not None
        clock.at = msk(2026, 6, 1, 0, 0)
        assert await admit(lic, rec, "sendMessage", "79990000099@c.us") is None
        status = await service.instance_status(core, rec.id, clock.at)
        corr_quota = next(q for q in status["quotas"] if q["method"] == "correspondents")
        assert corr_quota == {
            "method": "correspondents",
            "used": 1,
            "total": 3,
            "left": 2,
            "chats": ["79990000099@c.us"],
        }
        # One free instance per account.
        second = await instance(core, owner)
        with pytest.raises(BillingError, match="1 instance"):
            await service.start_free(core, owner, second.id, "developer", at_ms=clock.at)

    run(tmp_path, scenario)


def test_t01_method_quota_and_message_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch, msk(2026, 2, 10, 9))

    async def scenario(core: Core) -> None:
        await free_tariff(
            core,
            methods={"lastIncomingMessages": 2, "checkWhatsapp": 100, "sendLocation": 0},
            messagesPerMonth=2,
        )
        owner = await licensee(core)
        rec = await instance(core, owner)
        await service.start_free(core, owner, rec.id, "developer", at_ms=clock.at)
        lic = core.licensing
        assert lic is not None
        assert await admit(lic, rec, "lastIncomingMessages", None) is None
        assert await admit(lic, rec, "lastIncomingMessages", None) is None
        refusal = await admit(lic, rec, "lastIncomingMessages", None)
        assert refusal is not None and refusal.correspondents is None and refusal.invoke is not None
        assert (refusal.invoke.method, refusal.invoke.used, refusal.invoke.total) == (
            "lastincomingmessages",
            2,
            2,
        )
        assert refusal.invoke.exceeded and "Monthly quota has been exceeded" in refusal.invoke.description
        blocked = await admit(lic, rec, "sendLocation", "1@c.us")  # a quota of 0 blocks the feature
        assert blocked is not None and blocked.invoke is not None and blocked.invoke.total == 0
        assert await admit(lic, rec, "sendMessage", "1@c.us") is None
        assert await admit(lic, rec, "sendMessage", "2@c.us") is None
        capped = await admit(lic, rec, "sendMessage", "3@c.us")
        assert capped is not None and capped.invoke is not None and capped.invoke.method == "messages"
        kinds = [b["quotaData"]["method"] for b in await notification_bodies(core, rec.id, "quotaExceeded")]
        assert sorted(kinds) == ["lastincomingmessages", "messages", "sendlocation"]
        # Counts survive a restart within the flush bound: flush, then a fresh runtime reads them.
        await lic.flush()
        fresh = Licensing(core)
        core.licensing = fresh
        again = await admit(fresh, rec, "lastIncomingMessages", None)
        assert again is not None and again.invoke is not None and again.invoke.used == 2
        assert len(await notification_bodies(core, rec.id, "quotaExceeded")) == 3  # already noticed

    run(tmp_path, scenario)


def test_t01_trial_ends_on_its_date_without_manual_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch, msk(2026, 3, 10, 15))

    async def scenario(core: Core) -> None:
        await service.publish_tariff(
            core, code="trial", name="Trial", price="0", currency="USD", kind="trial", trial_days=7
        )
        owner = await licensee(core)
        rec = await instance(core, owner)
        lic_json = await service.start_free(core, owner, rec.id, "trial", at_ms=clock.at)
        # The activation day plus 7 full days: valid until 18 March 00:00 Moscow time.
        assert (lic_json["startsOn"], lic_json["endsOn"]) == ("2026-03-10", "2026-03-18")
        assert lic_json["endMs"] == msk(2026, 3, 18)
        lic = core.licensing
        assert lic is not None
        clock.at = msk(2026, 3, 17, 23, 59, 59)
        assert await admit(lic, rec, "sendMessage", "1@c.us") is None
        clock.at = msk(2026, 3, 18)
        refusal = await admit(lic, rec, "sendMessage", "1@c.us")
        assert refusal is not None and refusal.expired
        assert await admit(lic, rec, "getStateInstance", None) is None  # read-only account methods answer
        assert not await lic.may_send(rec)
        with pytest.raises(BillingError, match="already had a trial"):
            await service.start_free(core, owner, rec.id, "trial", at_ms=clock.at)

    run(tmp_path, scenario)


def test_unlicensed_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch, msk(2026, 4, 1, 10))

    async def scenario(core: Core) -> None:
        owner = await licensee(core)
        old = await instance(core, owner)
        lic = core.licensing
        assert lic is not None
        assert await admit(lic, old, "sendMessage", "1@c.us") is None  # default "open"
        await free_tariff(core, correspondents=1)
        await service.set_policy(core, "assign:developer", at_ms=old.created_ms + 1)
        new = await instance(core, owner)
        assert await admit(lic, new, "sendMessage", "1@c.us") is None
        refused = await admit(lic, new, "sendMessage", "2@c.us")
        assert refused is not None and refused.correspondents is not None
        assert await admit(lic, old, "sendMessage", "2@c.us") is None  # older instances keep working
        status = await service.instance_status(core, new.id, clock.at)
        assert status["current"]["tariff"]["code"] == "developer"
        await service.set_policy(core, "deny")
        third = await instance(core, owner)
        denied = await admit(lic, third, "sendMessage", "1@c.us")
        assert denied is not None and denied.expired
        with pytest.raises(BillingError):
            await service.set_policy(core, "assign:nope")

    run(tmp_path, scenario)


# --- T-02 / T-27: offer, payment, agreement; license from the next day ------------------------------------


def test_t02_payment_concludes_and_license_starts_next_local_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch, msk(2027, 1, 1, 1, 30))  # 31 Dec 2026 22:30 UTC

    async def scenario(core: Core) -> None:
        await service.publish_tariff(core, **PRO)
        await free_tariff(core)
        owner = await licensee(core)
        rec = await instance(core, owner)
        await service.start_free(core, owner, rec.id, "developer", at_ms=clock.at)
        invoice = await billing.issue_invoice(
            core, owner, [{"instanceId": rec.id, "tariff": "pro"}], at_ms=clock.at
        )
        assert (
            invoice["status"] == "issued"
            and invoice["total"] == "30.00"
            and invoice["number"] == f"INV-2027-{invoice['id']:06d}"
        )
        assert invoice["requisites"]["registrationNumber"] == "1027700000042"
        # A wrong amount is refused and changes nothing.
        with pytest.raises(BillingError, match="does not match"):
            await billing.record_payment(
                core, invoice["id"], method="manual", reference="r1", amount="29.99", at_ms=clock.at
            )
        assert (await billing.get_invoice(core, invoice["id"]))["status"] == "issued"
        paid = await billing.record_payment(
            core,
            invoice["id"],
            method="manual",
            reference="bank-1",
            amount="30.00",
            currency="USD",
            at_ms=clock.at,
        )
        assert paid["status"] == "paid" and len(paid["licenseIds"]) == 1
        status = await service.instance_status(core, rec.id, clock.at)
        # Concluded on 1 January (Moscow): the license runs 2 January .. 2 February (exclusive).
        nxt = status["upcoming"][0]
        assert (nxt["startsOn"], nxt["endsOn"], nxt["startMs"]) == (
            "2027-01-02",
            "2027-02-02",
            msk(2027, 1, 2),
        )
        # Until then the free license still applies; it gives way at the paid license's start.
        assert status["current"]["kind"] == "free" and status["current"]["endsOn"] == "2027-01-02"
        # Paying again with the same reference is harmless; paying a paid invoice is refused.
        dup = await billing.record_payment(
            core, invoice["id"], method="manual", reference="bank-1", at_ms=clock.at
        )
        assert dup["duplicate"] is True
        with pytest.raises(BillingError, match="is paid"):
            await billing.record_payment(
                core, invoice["id"], method="manual", reference="bank-2", at_ms=clock.at
            )
        async with core.read() as conn:
            assert await conn.scalar(select(func.count()).select_from(payments)) == 1
        # A renewal bought before the end starts when the current license ends.
        clock.at = msk(2027, 1, 20, 10)
        renewal = await billing.issue_invoice(
            core, owner, [{"instanceId": rec.id, "tariff": "pro", "periods": 2}], at_ms=clock.at
        )
        assert renewal["total"] == "60.00"
        await billing.record_payment(core, renewal["id"], method="manual", reference="bank-3", at_ms=clock.at)
        status = await service.instance_status(core, rec.id, clock.at)
        assert [(u["startsOn"], u["endsOn"]) for u in status["upcoming"]] == [("2027-02-02", "2027-04-02")]
        # The PDF carries the operator's requisites and the amounts (T-27).
        pdf = render_invoice(await billing.get_invoice(core, invoice["id"]), "Europe/Moscow")
        text = pdf_text(pdf)
        for needle in (
            "Verdigris Test Operator LLC",
            "1027700000042",
            "IBAN DE89",
            "billing@operator.test",
            invoice["number"],
            "30.00 USD",
            "Lee",
        ):
            assert needle in text, needle

    run(tmp_path, scenario)


def pdf_text(pdf: bytes) -> str:
    from pypdf import PdfReader

    assert pdf.startswith(b"%PDF")
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_t02_payment_callback_contract() -> None:
    from verdigris.licensing.provider import CallbackError, SignedCallbackProvider, sign

    provider = SignedCallbackProvider("acme", "s3cret", tolerance_s=300)
    body = b'{"invoice":"INV-2027-000001","amount":"30.00","currency":"USD","reference":"pi_1","status":"succeeded"}'
    now = 1_800_000_000
    event = provider.parse_callback(
        {"x-verdigris-signature": sign("s3cret", body, now)}, body, now_s=now + 10
    )
    assert (event.invoice_number, event.amount, event.reference, event.status) == (
        "INV-2027-000001",
        "30.00",
        "pi_1",
        "succeeded",
    )
    bad = [
        ({"x-verdigris-signature": sign("other", body, now)}, body, now),
        ({"x-verdigris-signature": sign("s3cret", body, now)}, body.replace(b"30.00", b"3.00"), now),
        ({"x-verdigris-signature": sign("s3cret", body, now - 301)}, body, now),
        ({}, body, now),
        ({"x-verdigris-signature": "t=abc,v1=00"}, body, now),
    ]
    for headers, raw, at in bad:
        with pytest.raises(CallbackError) as err:
            provider.parse_callback(headers, raw, now_s=at)
        assert err.value.status == 401
    with pytest.raises(CallbackError) as disabled:
        SignedCallbackProvider("acme", "").parse_callback({}, body)
    assert disabled.value.status == 404


# --- T-03: versioned tariffs ----------------------------------------------------------------------------


def test_t03_licenses_keep_their_tariff_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch, msk(2026, 6, 1, 12))

    async def scenario(core: Core) -> None:
        v1 = await service.publish_tariff(core, **PRO, limits={"methods": {"getMessage": 5}})
        owner = await licensee(core)
        rec = await instance(core, owner)
        inv = await billing.issue_invoice(
            core, owner, [{"instanceId": rec.id, "tariff": "pro"}], at_ms=clock.at
        )
        await billing.record_payment(core, inv["id"], method="manual", reference="a", at_ms=clock.at)
        v2 = await service.publish_tariff(
            core, **{**PRO, "price": "40.00"}, limits={"methods": {"getMessage": 1}}
        )
        assert (v1["version"], v2["version"]) == (1, 2)
        public = await service.list_tariffs(core)
        assert [(t["code"], t["version"], t["price"]) for t in public] == [("pro", 2, "40.00")]
        history = await service.list_tariffs(core, public_only=False, all_versions=True)
        assert [(t["version"], t["current"]) for t in history] == [(1, False), (2, True)]
        clock.at = msk(2026, 6, 2, 12)
        status = await service.instance_status(core, rec.id, clock.at)
        assert status["current"]["tariffId"] == v1["id"]
        lic = core.licensing
        assert lic is not None
        for _ in range(5):  # the v1 limit (5), not the v2 one (1)
            assert await admit(lic, rec, "getMessage", None) is None
        assert await admit(lic, rec, "getMessage", None) is not None
        # New agreements use the current version.
        inv2 = await billing.issue_invoice(
            core, owner, [{"instanceId": rec.id, "tariff": "pro"}], at_ms=clock.at
        )
        assert inv2["total"] == "40.00" and inv2["lines"][0]["tariffId"] == v2["id"]
        await service.withdraw_tariff(core, "pro")
        assert await service.list_tariffs(core) == []
        with pytest.raises(BillingError, match="no current tariff"):
            await billing.issue_invoice(core, owner, [{"instanceId": rec.id, "tariff": "pro"}])
        for bad in ({"price": "-1"}, {"price": 1.5}, {"currency": "US"}, {"price": "0"}):
            with pytest.raises(BillingError):
                await service.publish_tariff(core, **{**PRO, **bad})  # type: ignore[arg-type]

    run(tmp_path, scenario)


# --- T-04: plan change ----------------------------------------------------------------------------------------


def test_t04_plan_change_mid_period_extends_the_new_license(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch, msk(2026, 2, 28, 18))

    async def scenario(core: Core) -> None:
        await service.publish_tariff(core, **PRO)
        await service.publish_tariff(core, code="business", name="Business", price="90.00", currency="USD")
        owner = await licensee(core)
        rec = await instance(core, owner)
        inv = await billing.issue_invoice(
            core, owner, [{"instanceId": rec.id, "tariff": "pro"}], at_ms=clock.at
        )
        await billing.record_payment(core, inv["id"], method="manual", reference="p1", at_ms=clock.at)
        clock.at = msk(2026, 3, 10, 12)
        preview = await billing.preview_plan_change(core, owner, rec.id, "business", at_ms=clock.at)
        assert preview["current"]["startsOn"] == "2026-03-01" and preview["current"]["endsOn"] == "2026-04-01"
        assert {
            k: preview[k]
            for k in (
                "switchOn",
                "currentDays",
                "unusedDays",
                "unusedValue",
                "price",
                "newPeriodDays",
                "extensionDays",
                "remainder",
                "newEndsOn",
            )
        } == {
            "switchOn": "2026-03-11",
            "currentDays": 31,
            "unusedDays": 21,
            "unusedValue": "20.32",
            "price": "90.00",
            "newPeriodDays": 31,
            "extensionDays": 6,
            "remainder": "2.90",
            "newEndsOn": "2026-04-17",
        }
        confirmed = await billing.request_plan_change(core, owner, rec.id, "business", at_ms=clock.at)
        invoice = confirmed["invoice"]
        assert invoice["kind"] == "plan_change" and invoice["total"] == "90.00"
        await billing.record_payment(core, invoice["id"], method="manual", reference="p2", at_ms=clock.at)
        async with core.read() as conn:
            rows = {
                r.id: r
                for r in (await conn.execute(select(licenses).where(licenses.c.instance_id == rec.id))).all()
            }
        old, new = rows[preview["current"]["id"]], rows[max(rows)]
        assert (old.starts_on, old.ends_on, old.value, old.replaced_by) == (
            "2026-03-01",
            "2026-03-11",
            "9.68",
            new.id,
        )
        assert (new.starts_on, new.ends_on, new.value, new.carried_value, new.extension_days) == (
            "2026-03-11",
            "2026-04-17",
            "110.32",
            "20.32",
            6,
        )
        # No refund: the only money movements are the two payments in.
        async with core.read() as conn:
            amounts = [Decimal(a) for (a,) in (await conn.execute(select(payments.c.amount))).all()]
        assert amounts == [Decimal("30.00"), Decimal("90.00")]
        # Without a running paid license there is nothing to change.
        other = await instance(core, owner)
        with pytest.raises(BillingError, match="no running paid license"):
            await billing.preview_plan_change(core, owner, other.id, "business", at_ms=clock.at)

    run(tmp_path, scenario)


# --- T-05: expiry, reminders, renewal --------------------------------------------------------------------------


def test_t05_reminders_expiry_and_renewal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch, msk(2026, 7, 1, 9))

    async def scenario(core: Core) -> None:
        await service.publish_tariff(core, **PRO)
        owner = await licensee(core)
        rec = await instance(core, owner)
        granted = await service.grant(core, instance_id=rec.id, code="pro", days=10, at_ms=clock.at)
        assert (granted["startsOn"], granted["endsOn"]) == ("2026-07-01", "2026-07-11")
        worker = LicensingWorker(core)
        lic = core.licensing
        assert lic is not None
        outbox = core.settings.data_dir / "outbox"
        assert await worker.sweep(msk(2026, 7, 2)) == 0  # 9 days left: nothing yet
        assert await worker.sweep(msk(2026, 7, 4, 1)) == 1  # under 7 days
        assert await worker.sweep(msk(2026, 7, 5)) == 0  # that stage is done
        assert await worker.sweep(msk(2026, 7, 10, 1)) == 1  # under 1 day
        mails = sorted(p.read_text() for p in outbox.glob("*.eml"))
        assert len(mails) == 2 and all("To: lee@example.test" in m for m in mails)
        assert any("ends in 7 day(s)" in m for m in mails) and any("ends in 1 day(s)" in m for m in mails)
        clock.at = msk(2026, 7, 11)
        refusal = await admit(lic, rec, "sendMessage", "1@c.us")
        assert refusal is not None and refusal.expired
        assert not await lic.may_send(rec)
        assert await worker.sweep(clock.at) == 1  # the expired notice
        kinds = [n["kind"] for n in await service.list_notices(core, owner)]
        assert kinds == ["licenseExpired", "licenseExpiring", "licenseExpiring"]
        # Renewal restores service (from the next day, T-02).
        inv = await billing.issue_invoice(
            core, owner, [{"instanceId": rec.id, "tariff": "pro"}], at_ms=clock.at
        )
        await billing.record_payment(core, inv["id"], method="manual", reference="renew", at_ms=clock.at)
        clock.at = msk(2026, 7, 12)
        assert await admit(lic, rec, "sendMessage", "1@c.us") is None
        assert await lic.may_send(rec)
        # An extension by the operator moves the end and re-arms the reminders.
        status = await service.instance_status(core, rec.id, clock.at)
        extended = await service.extend(core, status["current"]["id"], 5)
        assert extended["endsOn"] == "2026-08-17"

    run(tmp_path, scenario)


# --- T-06, T-07: the billing overview and loyalty rules on invoices ---------------------------------------------


def test_t06_t07_overview_and_invoice_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch, msk(2026, 9, 15, 12))

    async def scenario(core: Core) -> None:
        await service.publish_tariff(core, **PRO, limits={"methods": {"getMessage": 10}})
        await billing.create_rule(core, name="Autumn 10%", kind="percent", value="10", priority=1)
        await billing.create_rule(
            core, name="Promo AUTUMN", kind="fixed", value="2.50", promo_code="AUTUMN", priority=2
        )
        await billing.create_rule(
            core, name="Promo bonus", kind="bonus_days", value="5", promo_code="autumn", priority=3
        )
        await billing.create_rule(
            core, name="Volume", kind="volume", tiers=[{"minQuantity": 2, "percent": "5"}], priority=4
        )
        owner = await licensee(core)
        a, b = await instance(core, owner), await instance(core, owner)
        with pytest.raises(BillingError, match="unknown promo code"):
            await billing.issue_invoice(
                core, owner, [{"instanceId": a.id, "tariff": "pro"}], promo_code="NOPE"
            )
        inv = await billing.issue_invoice(
            core,
            owner,
            [{"instanceId": a.id, "tariff": "pro"}, {"instanceId": b.id, "tariff": "pro"}],
            promo_code="autumn",
            at_ms=clock.at,
        )
        line = inv["lines"][0]
        # 30.00 -3.00 (10%) -2.50 (promo) = 24.50; +5 days; volume 5% of 24.50 = 1.225 -> 1.23 -> 23.27.
        assert [(x["rule"], x["amount"], x["bonusDays"]) for x in line["adjustments"]] == [
            ("Autumn 10%", "-3.00", 0),
            ("Promo AUTUMN", "-2.50", 0),
            ("Promo bonus", "0.00", 5),
            ("Volume", "-1.23", 0),
        ]
        assert line["amount"] == "23.27" and line["bonusDays"] == 5
        assert (inv["subtotal"], inv["total"]) == ("60.00", "46.54")
        text = pdf_text(render_invoice(inv, "Europe/Moscow"))
        assert 'rule "Promo AUTUMN"' in text and "46.54 USD" in text
        await billing.record_payment(core, inv["id"], method="manual", reference="x", at_ms=clock.at)
        clock.at = msk(2026, 9, 16, 12)
        lic = core.licensing
        assert lic is not None
        assert await admit(lic, a, "getMessage", None) is None
        view = await reports.overview(core, owner, clock.at)
        first = view["instances"][0]
        # Bonus days extend the period: 16 Sep + 1 month + 5 days.
        assert first["current"]["endsOn"] == "2026-10-21"
        assert first["quotas"] == [{"method": "getmessage", "used": 1, "total": 10, "left": 9}]
        assert len(view["invoices"]) == 1 and view["payments"][0]["amount"] == "46.54"

    run(tmp_path, scenario)


# --- T-08: transfer of rights -------------------------------------------------------------------------------


def test_t08_transfer_once_with_consent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch, msk(2026, 10, 1, 12))

    async def scenario(core: Core) -> None:
        await service.publish_tariff(core, **PRO)
        alice, bob = await licensee(core, "alice"), await licensee(core, "bob")
        carol = await licensee(core, "carol")
        rec = await instance(core, alice)
        granted = await service.grant(core, instance_id=rec.id, code="pro", periods=3, at_ms=clock.at)
        transfer = await transfers.request_transfer(core, alice, "bob", [granted["id"]], at_ms=clock.at)
        with pytest.raises(BillingError, match="approves it first"):
            await transfers.accept_transfer(core, bob, transfer["id"], at_ms=clock.at)
        with pytest.raises(BillingError, match="pending transfer"):
            await transfers.request_transfer(core, alice, "carol", [granted["id"]], at_ms=clock.at)
        await transfers.decide_transfer(core, 0, transfer["id"], True, at_ms=clock.at)
        with pytest.raises(BillingError):
            await transfers.accept_transfer(core, carol, transfer["id"], at_ms=clock.at)
        done = await transfers.accept_transfer(core, bob, transfer["id"], at_ms=clock.at)
        assert done["status"] == "accepted"
        moved = (await reports.account_licenses(core, bob))[0]
        assert moved["transferredFrom"] == alice and moved["transferable"] is False
        assert (await core.instances.get(rec.id)).account_id == bob  # type: ignore[union-attr]
        assert await reports.account_licenses(core, alice) == []
        with pytest.raises(BillingError, match="never be transferred again"):
            await transfers.request_transfer(core, bob, "carol", [granted["id"]], at_ms=clock.at)
        assert [n["kind"] for n in await service.list_notices(core, bob)] == [
            "transferReceived",
            "transferOffered",
        ]
        assert [n["kind"] for n in await service.list_notices(core, alice)] == ["transferCompleted"]

    run(tmp_path, scenario)


# --- operator: revenue per period -----------------------------------------------------------------------------


def test_revenue_per_local_month(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import date

    Clock(monkeypatch, msk(2026, 1, 1))

    async def scenario(core: Core) -> None:
        await service.publish_tariff(core, **PRO)
        owner = await licensee(core)
        rec = await instance(core, owner)
        # 31 Jan 22:30 UTC is 1 Feb in Moscow: that payment belongs to February.
        for reference, at in (
            ("a", msk(2026, 1, 15, 12)),
            ("b", msk(2026, 2, 1, 1, 30)),
            ("c", msk(2026, 3, 2, 12)),
        ):
            inv = await billing.issue_invoice(
                core, owner, [{"instanceId": rec.id, "tariff": "pro"}], at_ms=at
            )
            await billing.record_payment(core, inv["id"], method="manual", reference=reference, at_ms=at)
        report = await reports.revenue(core, date(2026, 1, 1), date(2026, 2, 28))
        assert report["payments"] == 2 and report["totals"] == {"USD": "60.00"}
        assert report["months"] == [
            {"month": "2026-01", "totals": {"USD": "30.00"}},
            {"month": "2026-02", "totals": {"USD": "30.00"}},
        ]

    run(tmp_path, scenario)

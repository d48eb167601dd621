"""Offers and payments: loyalty rules, invoices (T-02, T-07), payments, plan changes (T-04).

Same rules as :mod:`verdigris.licensing.service`: one transaction per action, ``at_ms`` for
exact tests, :class:`BillingError` for refusals.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import insert, select, update

from verdigris.accounts.models import accounts
from verdigris.licensing import dates, money, pricing
from verdigris.licensing.models import (
    invoice_lines,
    invoices,
    licenses,
    loyalty_rules,
    payments,
)
from verdigris.store.clock import now_ms

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from verdigris.core import Core

from verdigris.licensing.service import (
    BillingError,
    _covering,
    _end_free_at,
    _insert_license,
    _instance_row,
    _live_licenses,
    _now,
    _tz,
    current_tariff,
    licences_changed,
    license_json,
    requisites,
    tariff_json,
    tariff_row,
)

# --- loyalty rules (T-07) -----------------------------------------------------------------------------


def rule_json(row: Any) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "name": row.name,
        "kind": row.kind,
        "effect": row.effect,
        "value": row.value,
        "tiers": orjson.loads(row.tiers),
        "promoCode": row.promo_code,
        "tariffCode": row.tariff_code,
        "priority": int(row.priority),
        "active": bool(row.active),
    }


def _rule(row: Any) -> pricing.Rule:
    return pricing.Rule(
        id=int(row.id),
        name=row.name,
        kind=row.kind,
        effect=row.effect,
        value=Decimal(row.value),
        tiers=tuple((int(t["minQuantity"]), Decimal(t["percent"])) for t in orjson.loads(row.tiers)),
        promo_code=row.promo_code,
        tariff_code=row.tariff_code,
        priority=int(row.priority),
    )


async def create_rule(
    core: Core,
    *,
    name: str,
    kind: str,
    effect: str = pricing.DISCOUNT,
    value: Any = "0",
    tiers: list[dict[str, Any]] | None = None,
    promo_code: str | None = None,
    tariff_code: str | None = None,
    priority: int = 100,
) -> dict[str, Any]:
    if not name.strip():
        raise BillingError(400, "rule name is required")
    if kind not in pricing.RULE_KINDS:
        raise BillingError(400, f"rule kind must be one of {', '.join(pricing.RULE_KINDS)}")
    if effect not in (pricing.DISCOUNT, pricing.MARKUP):
        raise BillingError(400, "effect must be 'discount' or 'markup'")
    try:
        amount = money.parse(value)
        clean_tiers = []
        for tier in tiers or []:
            minimum = tier.get("minQuantity")
            if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
                raise BillingError(400, "every tier needs minQuantity >= 1")
            percent = money.parse(tier.get("percent"))
            if percent > 100 and effect == pricing.DISCOUNT:
                raise BillingError(400, "a discount cannot exceed 100 percent")
            clean_tiers.append({"minQuantity": minimum, "percent": str(percent)})
    except money.MoneyError as exc:
        raise BillingError(400, str(exc)) from None
    if kind == "percent" and effect == pricing.DISCOUNT and amount > 100:
        raise BillingError(400, "a discount cannot exceed 100 percent")
    if kind == "volume" and not clean_tiers:
        raise BillingError(400, "a volume rule needs tiers")
    if kind == "bonus_days" and (amount != amount.to_integral_value() or amount < 1):
        raise BillingError(400, "bonus days must be a whole number >= 1")
    promo = promo_code.strip() if promo_code else None
    async with core.tx() as tx:
        result = await tx.conn.execute(
            insert(loyalty_rules).values(
                name=name.strip(),
                kind=kind,
                effect=effect,
                value=str(amount),
                tiers=orjson.dumps(clean_tiers).decode(),
                promo_code=promo or None,
                tariff_code=tariff_code or None,
                priority=priority,
                active=True,
                created_ms=now_ms(),
            )
        )
        rule_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        row = (await tx.conn.execute(select(loyalty_rules).where(loyalty_rules.c.id == rule_id))).first()
    return rule_json(row)


async def deactivate_rule(core: Core, rule_id: int) -> None:
    async with core.tx() as tx:
        result = await tx.conn.execute(
            update(loyalty_rules).where(loyalty_rules.c.id == rule_id).values(active=False)
        )
    if not result.rowcount:
        raise BillingError(404, f"no loyalty rule {rule_id}")


async def list_rules(core: Core) -> list[dict[str, Any]]:
    async with core.read() as conn:
        rows = (await conn.execute(select(loyalty_rules).order_by(loyalty_rules.c.id))).all()
    return [rule_json(r) for r in rows]


async def _active_rules(conn: AsyncConnection) -> list[pricing.Rule]:
    rows = (await conn.execute(select(loyalty_rules).where(loyalty_rules.c.active.is_(True)))).all()
    return [_rule(r) for r in rows]


async def check_promo_code(core: Core, promo_code: str | None) -> None:
    """Refuse an unknown promo code before anything else is asked (a form shows every error)."""
    async with core.read() as conn:
        _check_promo(await _active_rules(conn), promo_code.strip() if promo_code else None)


def _check_promo(rules: list[pricing.Rule], promo_code: str | None) -> None:
    if promo_code and not any(
        r.promo_code and r.promo_code.casefold() == promo_code.casefold() for r in rules
    ):
        raise BillingError(400, f"unknown promo code {promo_code!r}", field="promo")


# --- invoices (offers) and payments (T-02) ----------------------------------------------------------------


async def _buyer(conn: AsyncConnection, account_id: int) -> dict[str, Any]:
    row = (
        await conn.execute(
            select(accounts.c.id, accounts.c.username, accounts.c.name, accounts.c.email).where(
                accounts.c.id == account_id
            )
        )
    ).first()
    if row is None:
        raise BillingError(404, f"no account {account_id}")
    return {"accountId": int(row.id), "username": row.username, "name": row.name, "email": row.email}


def _line_description(tariff: Any, instance_id: int | None, quantity: int) -> str:
    unit = tariff.period_unit + ("s" if int(tariff.period_count) * quantity != 1 else "")
    what = f'License "{tariff.name}" (v{tariff.version}), {int(tariff.period_count) * quantity} {unit}'
    return what + (f", instance {instance_id}" if instance_id is not None else "")


# Bounds what one request can make the server build (every line costs a row and PDF space).
MAX_INVOICE_ITEMS = 100


async def issue_invoice(
    core: Core,
    account_id: int,
    items: list[dict[str, Any]],
    *,
    promo_code: str | None = None,
    kind: str = "purchase",
    replaces_license: int | None = None,
    at_ms: int | None = None,
) -> dict[str, Any]:
    """Issue an invoice (the offer) for licenses of the account's instances.

    ``items``: ``[{"instanceId": int, "tariff": code, "periods": int}]``. Prices come from the
    tariffs' current versions and the active loyalty rules; each line records the rules that
    changed it. Paying the invoice concludes the license agreement.
    """
    at = _now(at_ms)
    if not items:
        raise BillingError(400, "an invoice needs at least one item")
    if len(items) > MAX_INVOICE_ITEMS:
        raise BillingError(400, f"an invoice has at most {MAX_INVOICE_ITEMS} items (one per instance)")
    named = [item.get("instanceId") for item in items]
    if len(set(map(repr, named))) != len(named):
        raise BillingError(400, "each instance may appear once in an invoice (use 'periods' for longer)")
    promo = promo_code.strip() if promo_code else None
    async with core.tx() as tx:
        buyer = await _buyer(tx.conn, account_id)
        lines: list[pricing.LineIn] = []
        tariff_ids: list[int] = []
        currency = ""
        for item in items:
            instance_id = item.get("instanceId")
            code = item.get("tariff")
            periods = item.get("periods", 1)
            if not isinstance(instance_id, int) or isinstance(instance_id, bool):
                raise BillingError(400, "every item needs an integer instanceId")
            if isinstance(periods, bool) or not isinstance(periods, int) or not 1 <= periods <= 120:
                raise BillingError(400, "periods must be an integer from 1 to 120", field="periods")
            inst = await _instance_row(tx.conn, instance_id)
            if inst.account_id != account_id:
                raise BillingError(404, f"no instance {instance_id}")
            tariff = await current_tariff(tx.conn, str(code or ""))
            if tariff is None:
                raise BillingError(404, f"no current tariff {code!r}", field="tariff")
            if tariff.kind != "paid":
                raise BillingError(
                    400, f"{tariff.code!r} is {tariff.kind}: start it without an invoice", field="tariff"
                )
            if currency and tariff.currency != currency:
                raise BillingError(400, "all items of an invoice must be in one currency")
            currency = tariff.currency
            lines.append(
                pricing.LineIn(
                    tariff_code=tariff.code,
                    unit_price=Decimal(tariff.price),
                    quantity=periods,
                    description=_line_description(tariff, instance_id, periods),
                    instance_id=instance_id,
                )
            )
            tariff_ids.append(int(tariff.id))
        rules = await _active_rules(tx.conn)
        _check_promo(rules, promo)
        priced = pricing.price_lines(lines, rules, currency, promo)
        subtotal = sum((p.base for p in priced), Decimal(0))
        total = sum((p.amount for p in priced), Decimal(0))
        result = await tx.conn.execute(
            insert(invoices).values(
                number=f"tmp-{uuid.uuid4().hex}",
                account_id=account_id,
                kind=kind,
                status="issued",
                currency=currency,
                subtotal=money.text(subtotal, currency),
                total=money.text(total, currency),
                promo_code=promo,
                replaces_license=replaces_license,
                requisites=orjson.dumps(requisites(core)).decode(),
                buyer=orjson.dumps(buyer).decode(),
                created_ms=at,
            )
        )
        invoice_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        year = dates.local_date(at, _tz(core)).year
        await tx.conn.execute(
            update(invoices).where(invoices.c.id == invoice_id).values(number=f"INV-{year}-{invoice_id:06d}")
        )
        for position, (line, tariff_id) in enumerate(zip(priced, tariff_ids, strict=True), start=1):
            await tx.conn.execute(
                insert(invoice_lines).values(
                    invoice_id=invoice_id,
                    position=position,
                    instance_id=line.line.instance_id,
                    tariff_id=tariff_id,
                    description=line.line.description,
                    unit_price=money.text(line.line.unit_price, currency),
                    quantity=line.line.quantity,
                    base=money.text(line.base, currency),
                    amount=money.text(line.amount, currency),
                    bonus_days=line.bonus_days,
                    adjustments=orjson.dumps([a.as_json(currency) for a in line.adjustments]).decode(),
                )
            )
        return await invoice_json(tx.conn, invoice_id)


async def invoice_json(conn: AsyncConnection, invoice_id: int) -> dict[str, Any]:
    row = (await conn.execute(select(invoices).where(invoices.c.id == invoice_id))).first()
    if row is None:
        raise BillingError(404, f"no invoice {invoice_id}")
    line_rows = (
        await conn.execute(
            select(invoice_lines)
            .where(invoice_lines.c.invoice_id == invoice_id)
            .order_by(invoice_lines.c.position)
        )
    ).all()
    pay_rows = (
        await conn.execute(
            select(payments).where(payments.c.invoice_id == invoice_id).order_by(payments.c.id)
        )
    ).all()
    lic_rows = (await conn.execute(select(licenses.c.id).where(licenses.c.invoice_id == invoice_id))).all()
    return {
        "id": int(row.id),
        "number": row.number,
        "accountId": int(row.account_id),
        "kind": row.kind,
        "status": row.status,
        "currency": row.currency,
        "subtotal": row.subtotal,
        "total": row.total,
        "promoCode": row.promo_code,
        "replacesLicense": row.replaces_license,
        "requisites": orjson.loads(row.requisites),
        "buyer": orjson.loads(row.buyer),
        "createdMs": int(row.created_ms),
        "paidMs": int(row.paid_ms) if row.paid_ms is not None else None,
        "lines": [
            {
                "position": int(r.position),
                "instanceId": r.instance_id,
                "tariffId": int(r.tariff_id),
                "description": r.description,
                "unitPrice": r.unit_price,
                "quantity": int(r.quantity),
                "base": r.base,
                "amount": r.amount,
                "bonusDays": int(r.bonus_days),
                "adjustments": orjson.loads(r.adjustments),
            }
            for r in line_rows
        ],
        "payments": [payment_json(p) for p in pay_rows],
        "licenseIds": [int(r.id) for r in lic_rows],
        "pdf": f"/api/v1/invoices/{int(row.id)}/pdf",
    }


def payment_json(row: Any) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "invoiceId": int(row.invoice_id),
        "amount": row.amount,
        "currency": row.currency,
        "method": row.method,
        "reference": row.reference,
        "receivedMs": int(row.received_ms),
    }


async def get_invoice(core: Core, invoice_id: int, account_id: int | None = None) -> dict[str, Any]:
    async with core.read() as conn:
        data = await invoice_json(conn, invoice_id)
    if account_id is not None and data["accountId"] != account_id:
        raise BillingError(404, f"no invoice {invoice_id}")
    return data


async def find_invoice_id(core: Core, number: str) -> int | None:
    async with core.read() as conn:
        value = await conn.scalar(select(invoices.c.id).where(invoices.c.number == number))
    return int(value) if value is not None else None


async def list_invoices(core: Core, account_id: int | None = None) -> list[dict[str, Any]]:
    query = select(invoices.c.id).order_by(invoices.c.id.desc())
    if account_id is not None:
        query = query.where(invoices.c.account_id == account_id)
    async with core.read() as conn:
        ids = [int(r[0]) for r in (await conn.execute(query)).all()]
        return [await invoice_json(conn, i) for i in ids]


async def cancel_invoice(core: Core, invoice_id: int, account_id: int | None = None) -> dict[str, Any]:
    async with core.tx() as tx:
        row = (await tx.conn.execute(select(invoices).where(invoices.c.id == invoice_id))).first()
        if row is None or (account_id is not None and int(row.account_id) != account_id):
            raise BillingError(404, f"no invoice {invoice_id}")
        if row.status != "issued":
            raise BillingError(409, f"invoice {row.number} is {row.status}")
        await tx.conn.execute(
            update(invoices)
            .where(invoices.c.id == invoice_id)
            .values(status="cancelled", cancelled_ms=now_ms())
        )
        return await invoice_json(tx.conn, invoice_id)


async def record_payment(
    core: Core,
    invoice_id: int,
    *,
    method: str,
    reference: str,
    amount: Any = None,
    currency: str | None = None,
    recorded_by: int | None = None,
    at_ms: int | None = None,
) -> dict[str, Any]:
    """A payment of the whole invoice concludes the license agreement (T-02).

    The licenses start the calendar day after ``at_ms`` in the operator's time zone (a renewal
    bought before the current license ends starts when it ends) and run for the tariff's period
    (times the line's quantity) plus bonus days; a plan change adds the converted unused value.
    A repeated provider reference is answered with the earlier result and changes nothing.
    """
    at = _now(at_ms)
    tz = _tz(core)
    if not reference or len(reference) > 200:
        raise BillingError(400, "a payment reference (1..200 characters) is required")
    touched: list[int] = []
    async with core.tx() as tx:
        seen = (
            await tx.conn.execute(
                select(payments).where((payments.c.method == method) & (payments.c.reference == reference))
            )
        ).first()
        if seen is not None:
            if int(seen.invoice_id) != invoice_id:
                raise BillingError(409, f"payment reference {reference!r} was used for another invoice")
            data = await invoice_json(tx.conn, invoice_id)
            data["duplicate"] = True
            return data
        row = (await tx.conn.execute(select(invoices).where(invoices.c.id == invoice_id))).first()
        if row is None:
            raise BillingError(404, f"no invoice {invoice_id}")
        if row.status != "issued":
            raise BillingError(409, f"invoice {row.number} is {row.status}")
        total = Decimal(row.total)
        if amount is not None:
            try:
                paid = money.parse(amount, row.currency)
            except money.MoneyError as exc:
                raise BillingError(400, str(exc)) from None
            if paid != total or (currency is not None and currency.upper() != row.currency):
                raise BillingError(
                    400,
                    f"payment {amount} {currency or ''} does not match invoice total {row.total} {row.currency}",
                )
        await tx.conn.execute(
            insert(payments).values(
                invoice_id=invoice_id,
                amount=row.total,
                currency=row.currency,
                method=method,
                reference=reference,
                recorded_by=recorded_by,
                received_ms=at,
            )
        )
        await tx.conn.execute(
            update(invoices).where(invoices.c.id == invoice_id).values(status="paid", paid_ms=at)
        )
        line_rows = (
            await tx.conn.execute(
                select(invoice_lines)
                .where(invoice_lines.c.invoice_id == invoice_id)
                .order_by(invoice_lines.c.position)
            )
        ).all()
        concluded = dates.start_after_conclusion(at, tz)
        for line in line_rows:
            tariff = await tariff_row(tx.conn, int(line.tariff_id))
            instance_id = int(line.instance_id)
            inst = await _instance_row(tx.conn, instance_id)
            value = Decimal(line.amount)
            start = concluded
            carried = Decimal(0)
            extension = 0
            if row.kind == "plan_change" and row.replaces_license is not None:
                old = (
                    await tx.conn.execute(select(licenses).where(licenses.c.id == row.replaces_license))
                ).first()
                if old is not None and old.status == "active" and old.ends_on is not None:
                    conv = _conversion(old, tariff, start, int(line.quantity))
                    carried, extension = conv.unused_value, conv.extension_days
                    if conv.unused_days:
                        await tx.conn.execute(
                            update(licenses)
                            .where(licenses.c.id == old.id)
                            .values(
                                ends_on=start.isoformat(),
                                end_ms=dates.day_start_ms(start, tz),
                                value=money.text(Decimal(old.value) - conv.unused_value, old.currency),
                                status="active",
                            )
                        )
            else:
                start = await _renewal_start(tx.conn, instance_id, start, at)
            end = dates.period_end(start, tariff.period_unit, int(tariff.period_count) * int(line.quantity))
            end = end + dates.DAY * (int(line.bonus_days) + extension)
            start_ms = dates.day_start_ms(start, tz)
            await _end_free_at(tx.conn, instance_id, start_ms, start, at)
            license_id = await _insert_license(
                tx.conn,
                instance_id=instance_id,
                account_id=inst.account_id,
                tariff_id=int(tariff.id),
                kind="paid",
                starts_on=start.isoformat(),
                ends_on=end.isoformat(),
                start_ms=start_ms,
                end_ms=dates.day_start_ms(end, tz),
                value=money.text(value + carried, row.currency),
                currency=row.currency,
                carried_value=money.text(carried, row.currency),
                extension_days=extension,
                bonus_days=int(line.bonus_days),
                invoice_id=invoice_id,
                created_ms=at,
            )
            if row.kind == "plan_change" and row.replaces_license is not None:
                await tx.conn.execute(
                    update(licenses)
                    .where(licenses.c.id == row.replaces_license)
                    .values(replaced_by=license_id)
                )
            touched.append(instance_id)
        licences_changed(tx, touched)
        return await invoice_json(tx.conn, invoice_id)


async def _renewal_start(conn: AsyncConnection, instance_id: int, start: date, at: int) -> date:
    """A license bought while a paid or granted one runs starts when that one ends."""
    for row in await _live_licenses(conn, instance_id, at):
        if row.kind in ("paid", "grant") and row.ends_on is not None:
            ends = dates.parse_date(row.ends_on)
            if ends > start:
                start = ends
    return start


def _conversion(old: Any, tariff: Any, switch_day: date, quantity: int = 1) -> pricing.Conversion:
    return pricing.convert(
        value=Decimal(old.value),
        start=dates.parse_date(old.starts_on),
        end=dates.parse_date(old.ends_on),
        switch_day=switch_day,
        new_price=Decimal(tariff.price) * quantity,
        new_unit=tariff.period_unit,
        new_count=int(tariff.period_count) * quantity,
        currency=old.currency,
    )


# --- plan change (T-04) --------------------------------------------------------------------------------


async def preview_plan_change(
    core: Core,
    account_id: int,
    instance_id: int,
    code: str,
    *,
    promo_code: str | None = None,
    at_ms: int | None = None,
) -> dict[str, Any]:
    """What changing the instance's plan to ``code`` would do if concluded at ``at_ms``: the price of
    the new tariff's period, the unused value of the current license and the days it adds."""
    at = _now(at_ms)
    tz = _tz(core)
    async with core.read() as conn:
        inst = await _instance_row(conn, instance_id)
        if inst.account_id != account_id:
            raise BillingError(404, f"no instance {instance_id}")
        current = _covering(await _live_licenses(conn, instance_id, at), at)
        if current is None or current.kind not in ("paid", "grant") or current.ends_on is None:
            raise BillingError(
                409, "the instance has no running paid license to change; buy a tariff instead"
            )
        tariff = await current_tariff(conn, code)
        if tariff is None:
            raise BillingError(404, f"no current tariff {code!r}", field="tariff")
        if tariff.kind != "paid":
            raise BillingError(400, "a paid license can only change to another paid tariff")
        if tariff.currency != current.currency:
            raise BillingError(400, f"the new tariff must be priced in {current.currency}")
        old_tariff = await tariff_row(conn, int(current.tariff_id))
        rules = await _active_rules(conn)
    _check_promo(rules, promo_code)
    line = pricing.price_lines(
        [pricing.LineIn(tariff.code, Decimal(tariff.price), 1, instance_id=instance_id)],
        rules,
        tariff.currency,
        promo_code,
    )[0]
    switch_day = dates.start_after_conclusion(at, tz)
    conv = _conversion(current, tariff, switch_day)
    cur = tariff.currency
    return {
        "instanceId": instance_id,
        "current": license_json(current, old_tariff),
        "tariff": tariff_json(tariff),
        "price": money.text(line.amount, cur),
        "priceBeforeRules": money.text(line.base, cur),
        "adjustments": [a.as_json(cur) for a in line.adjustments],
        "bonusDays": line.bonus_days,
        "switchOn": conv.switch_day.isoformat(),
        "currentDays": conv.total_days,
        "unusedDays": conv.unused_days,
        "currentValue": money.text(conv.value, cur),
        "unusedValue": money.text(conv.unused_value, cur),
        "newPeriodDays": conv.new_period_days,
        "extensionDays": conv.extension_days,
        "remainder": money.text(conv.remainder, cur),
        "newEndsOn": (conv.new_end + dates.DAY * line.bonus_days).isoformat(),
        "refund": "none: the unused value only extends the new license",
        "computedAtMs": at,
    }


async def request_plan_change(
    core: Core,
    account_id: int,
    instance_id: int,
    code: str,
    *,
    promo_code: str | None = None,
    at_ms: int | None = None,
) -> dict[str, Any]:
    """Confirm a plan change: issues the invoice; the extension is computed again when it is paid."""
    preview = await preview_plan_change(
        core, account_id, instance_id, code, promo_code=promo_code, at_ms=at_ms
    )
    invoice = await issue_invoice(
        core,
        account_id,
        [{"instanceId": instance_id, "tariff": code, "periods": 1}],
        promo_code=promo_code,
        kind="plan_change",
        replaces_license=int(preview["current"]["id"]),
        at_ms=at_ms,
    )
    return {"preview": preview, "invoice": invoice}

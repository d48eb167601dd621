"""Licensing actions: tariffs, licenses, invoices and payments, plan changes, loyalty, transfers.

Every state change happens here in one transaction (``core.tx()``). Actions take ``at_ms`` (the
instant they happen, default now) so the calendar rules can be tested exactly. Refusals raise
:class:`BillingError` with an HTTP status and a clear message; nothing has changed then.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import func, insert, select, update

from verdigris.accounts.models import accounts
from verdigris.instances.models import instances, workspace_meta
from verdigris.licensing import dates, money, pricing
from verdigris.licensing.limits import LimitsError, parse_limits
from verdigris.licensing.models import (
    invoice_lines,
    invoices,
    licenses,
    loyalty_rules,
    notices,
    payments,
    tariffs,
    transfers,
)
from verdigris.store.clock import now_ms

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from sqlalchemy.ext.asyncio import AsyncConnection

    from verdigris.core import Core
    from verdigris.instances.service import InstanceRecord

TARIFF_KINDS = ("paid", "free", "trial")
PERIOD_UNITS = ("month", "day")
POLICY_KEY = "licensing.unlicensed"


class BillingError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _now(at_ms: int | None) -> int:
    return now_ms() if at_ms is None else at_ms


def _tz(core: Core) -> ZoneInfo:
    return dates.zone(core.settings.operator_timezone)


def _after_change(core: Core, instance_ids: list[int]) -> list[Any]:
    """After-commit actions: reload entitlements, wake the send worker (renewal restores sending)."""

    def run() -> None:
        lic = getattr(core, "licensing", None)
        for instance_id in instance_ids:
            if lic is not None:
                lic.forget(instance_id)
            rec = core.instances.peek(instance_id)
            if rec is not None and core.sender is not None:
                core.sender.wake(rec)

    return [run]


# --- tariffs (T-03) ----------------------------------------------------------------------------------


def tariff_json(row: Any) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "code": row.code,
        "version": int(row.version),
        "name": row.name,
        "description": row.description,
        "price": row.price,
        "currency": row.currency,
        "period": {"unit": row.period_unit, "count": int(row.period_count)},
        "kind": row.kind,
        "trialDays": int(row.trial_days),
        "limits": orjson.loads(row.limits),
        "features": orjson.loads(row.features),
        "public": bool(row.public),
        "publishedMs": int(row.published_ms),
        "current": row.superseded_ms is None,
    }


async def current_tariff(conn: AsyncConnection, code: str) -> Any:
    return (
        await conn.execute(
            select(tariffs).where((tariffs.c.code == code) & tariffs.c.superseded_ms.is_(None)).limit(1)
        )
    ).first()


async def tariff_row(conn: AsyncConnection, tariff_id: int) -> Any:
    return (await conn.execute(select(tariffs).where(tariffs.c.id == tariff_id))).first()


async def publish_tariff(
    core: Core,
    *,
    code: str,
    name: str,
    price: Any,
    currency: str,
    period_unit: str = "month",
    period_count: int = 1,
    kind: str = "paid",
    trial_days: int = 0,
    limits: Any = None,
    features: list[str] | None = None,
    public: bool = True,
    description: str = "",
    at_ms: int | None = None,
) -> dict[str, Any]:
    """Publish a tariff, or a new version of it. Licenses keep the version they were bought under."""
    at = _now(at_ms)
    if not code or not code.replace("-", "").replace("_", "").isalnum() or len(code) > 64:
        raise BillingError(400, "tariff code must be letters, digits, '-' or '_' (at most 64)")
    if not name.strip():
        raise BillingError(400, "tariff name is required")
    if kind not in TARIFF_KINDS:
        raise BillingError(400, f"tariff kind must be one of {', '.join(TARIFF_KINDS)}")
    if period_unit not in PERIOD_UNITS or not isinstance(period_count, int) or period_count < 1:
        raise BillingError(400, "period must be a positive count of 'month' or 'day'")
    if kind == "trial" and trial_days < 1:
        raise BillingError(400, "a trial tariff needs trialDays >= 1")
    try:
        currency = money.valid_currency(currency)
        amount = money.parse(price, currency)
        parsed_limits = parse_limits(limits)
    except (money.MoneyError, LimitsError) as exc:
        raise BillingError(400, str(exc)) from None
    if kind == "paid" and amount <= 0:
        raise BillingError(400, "a paid tariff needs a price above zero")
    if kind != "paid" and amount != 0:
        raise BillingError(400, "free and trial tariffs have price 0")
    async with core.tx() as tx:
        top = await tx.conn.scalar(select(func.max(tariffs.c.version)).where(tariffs.c.code == code))
        version = int(top or 0) + 1
        await tx.conn.execute(
            update(tariffs)
            .where((tariffs.c.code == code) & tariffs.c.superseded_ms.is_(None))
            .values(superseded_ms=at)
        )
        await tx.conn.execute(
            insert(tariffs).values(
                code=code,
                version=version,
                name=name.strip(),
                description=description,
                price=money.text(amount, currency),
                currency=currency,
                period_unit=period_unit,
                period_count=period_count,
                kind=kind,
                trial_days=trial_days if kind == "trial" else 0,
                limits=orjson.dumps(parsed_limits.as_json()).decode(),
                features=orjson.dumps(list(features or [])).decode(),
                public=public,
                published_ms=at,
            )
        )
        row = await current_tariff(tx.conn, code)
    return tariff_json(row)


async def withdraw_tariff(core: Core, code: str, at_ms: int | None = None) -> None:
    """No new agreements on this tariff; existing licenses are not affected."""
    async with core.tx() as tx:
        result = await tx.conn.execute(
            update(tariffs)
            .where((tariffs.c.code == code) & tariffs.c.superseded_ms.is_(None))
            .values(superseded_ms=_now(at_ms))
        )
    if not result.rowcount:
        raise BillingError(404, f"no current tariff {code!r}")


async def list_tariffs(
    core: Core, *, public_only: bool = True, all_versions: bool = False
) -> list[dict[str, Any]]:
    query = select(tariffs).order_by(tariffs.c.code, tariffs.c.version)
    if not all_versions:
        query = query.where(tariffs.c.superseded_ms.is_(None))
    if public_only:
        query = query.where(tariffs.c.public.is_(True))
    async with core.read() as conn:
        rows = (await conn.execute(query)).all()
    return [tariff_json(r) for r in rows]


# --- the unlicensed policy ----------------------------------------------------------------------------


async def _meta(conn: AsyncConnection, key: str) -> str | None:
    return await conn.scalar(select(workspace_meta.c.value).where(workspace_meta.c.key == key))


async def get_policy(core: Core, conn: AsyncConnection | None = None) -> dict[str, Any]:
    if conn is None:
        async with core.read() as own:
            stored = await _meta(own, POLICY_KEY)
    else:
        stored = await _meta(conn, POLICY_KEY)
    if stored is None:
        return {"unlicensed": core.settings.licensing_unlicensed, "sinceMs": 0, "source": "config"}
    value = orjson.loads(stored)
    return {"unlicensed": value["unlicensed"], "sinceMs": int(value["sinceMs"]), "source": "operator"}


async def set_policy(core: Core, unlicensed: str, at_ms: int | None = None) -> dict[str, Any]:
    """Set what unlicensed instances may do; "assign:<code>" applies to instances created from now on."""
    async with core.tx() as tx:
        if unlicensed not in ("open", "deny"):
            code = unlicensed.split(":", 1)[1] if unlicensed.startswith("assign:") else ""
            row = await current_tariff(tx.conn, code) if code else None
            if row is None or row.kind == "paid":
                raise BillingError(
                    400, "policy must be 'open', 'deny' or 'assign:<free or trial tariff code>'"
                )
        text = orjson.dumps({"unlicensed": unlicensed, "sinceMs": _now(at_ms)}).decode()
        if await _meta(tx.conn, POLICY_KEY) is None:
            await tx.conn.execute(insert(workspace_meta).values(key=POLICY_KEY, value=text))
        else:
            await tx.conn.execute(
                update(workspace_meta).where(workspace_meta.c.key == POLICY_KEY).values(value=text)
            )
    lic = getattr(core, "licensing", None)
    if lic is not None:
        lic._entitlements.clear()
    return await get_policy(core)


async def unlicensed_policy_for(core: Core, conn: AsyncConnection, instance_id: int) -> str:
    """ "open", "deny" or "assign:<code>" for an instance that has never had a license."""
    policy = await get_policy(core, conn)
    value = str(policy["unlicensed"])
    if value.startswith("assign:"):
        created = await conn.scalar(select(instances.c.created_ms).where(instances.c.id == instance_id))
        if created is not None and int(created) < int(policy["sinceMs"]):
            return "open"  # instances older than the policy keep working as before
    return value if value in ("open", "deny") or value.startswith("assign:") else "open"


async def assign_default(core: Core, inst: InstanceRecord, code: str, at_ms: int | None = None) -> None:
    try:
        await start_free(core, inst.account_id, inst.id, code, check_owner=False, at_ms=at_ms)
    except BillingError:
        pass  # e.g. the account has used its free instances: the instance stays unlicensed (denied)


# --- licenses ---------------------------------------------------------------------------------------


def license_json(row: Any, tariff: Any | None = None) -> dict[str, Any]:
    out = {
        "id": int(row.id),
        "instanceId": int(row.instance_id),
        "accountId": row.account_id,
        "tariffId": int(row.tariff_id),
        "kind": row.kind,
        "startsOn": row.starts_on,
        "endsOn": row.ends_on,
        "startMs": int(row.start_ms),
        "endMs": int(row.end_ms) if row.end_ms is not None else None,
        "value": row.value,
        "currency": row.currency,
        "carriedValue": row.carried_value,
        "extensionDays": int(row.extension_days),
        "bonusDays": int(row.bonus_days),
        "invoiceId": row.invoice_id,
        "status": row.status,
        "replacedBy": row.replaced_by,
        "transferredFrom": row.transferred_from,
        "transferable": row.transferred_from is None,
    }
    if tariff is not None:
        out["tariff"] = {"code": tariff.code, "version": int(tariff.version), "name": tariff.name}
    return out


async def _instance_row(conn: AsyncConnection, instance_id: int) -> Any:
    row = (
        await conn.execute(
            select(instances.c.id, instances.c.account_id, instances.c.created_ms).where(
                (instances.c.id == instance_id) & instances.c.deleted_ms.is_(None)
            )
        )
    ).first()
    if row is None:
        raise BillingError(404, f"no instance {instance_id}")
    return row


async def _live_licenses(conn: AsyncConnection, instance_id: int, at: int) -> list[Any]:
    return list(
        (
            await conn.execute(
                select(licenses)
                .where(
                    (licenses.c.instance_id == instance_id)
                    & (licenses.c.status == "active")
                    & (licenses.c.end_ms.is_(None) | (licenses.c.end_ms > at))
                )
                .order_by(licenses.c.start_ms, licenses.c.id)
            )
        ).all()
    )


def _covering(rows: list[Any], at: int) -> Any:
    for row in rows:
        if int(row.start_ms) <= at and (row.end_ms is None or at < int(row.end_ms)):
            return row
    return None


async def _insert_license(conn: AsyncConnection, **values: Any) -> int:
    values.setdefault("created_ms", now_ms())
    result = await conn.execute(insert(licenses).values(**values))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


async def start_free(
    core: Core,
    account_id: int | None,
    instance_id: int,
    code: str,
    *,
    at_ms: int | None = None,
    check_owner: bool = True,
) -> dict[str, Any]:
    """Start a free or trial license on an instance (T-01). A trial runs the activation day plus
    ``trialDays`` full days and ends by itself; a free license has no end."""
    at = _now(at_ms)
    tz = _tz(core)
    async with core.tx() as tx:
        inst = await _instance_row(tx.conn, instance_id)
        if check_owner and inst.account_id != account_id:
            raise BillingError(404, f"no instance {instance_id}")
        tariff = await current_tariff(tx.conn, code)
        if tariff is None or tariff.kind == "paid":
            raise BillingError(400, f"{code!r} is not a free or trial tariff")
        if _covering(await _live_licenses(tx.conn, instance_id, at), at) is not None:
            raise BillingError(409, "the instance already has a license")
        if tariff.kind == "trial":
            had = await tx.conn.scalar(
                select(licenses.c.id).where(
                    (licenses.c.instance_id == instance_id) & (licenses.c.kind == "trial")
                )
            )
            if had is not None:
                raise BillingError(409, "the instance has already had a trial")
        per_account = parse_limits(orjson.loads(tariff.limits)).instances_per_account
        if per_account is not None and inst.account_id is not None:
            used = await tx.conn.scalar(
                select(func.count())
                .select_from(licenses.join(tariffs, tariffs.c.id == licenses.c.tariff_id))
                .where(
                    (licenses.c.account_id == inst.account_id)
                    & (tariffs.c.code == code)
                    & (licenses.c.status == "active")
                    & (licenses.c.end_ms.is_(None) | (licenses.c.end_ms > at))
                )
            )
            if int(used or 0) >= per_account:
                raise BillingError(409, f"tariff {code!r} allows {per_account} instance(s) per account")
        today = dates.local_date(at, tz)
        end: date | None = None
        if tariff.kind == "trial":
            end = today + dates.DAY * (int(tariff.trial_days) + 1)
        license_id = await _insert_license(
            tx.conn,
            instance_id=instance_id,
            account_id=inst.account_id,
            tariff_id=int(tariff.id),
            kind=tariff.kind,
            starts_on=today.isoformat(),
            ends_on=end.isoformat() if end else None,
            start_ms=at,
            end_ms=dates.day_start_ms(end, tz) if end else None,
            currency=tariff.currency,
            created_ms=at,
        )
        for action in _after_change(core, [instance_id]):
            tx.on_commit(action)
        row = (await tx.conn.execute(select(licenses).where(licenses.c.id == license_id))).first()
    return license_json(row, tariff)


async def grant(
    core: Core,
    *,
    instance_id: int,
    code: str,
    starts_on: date | None = None,
    days: int | None = None,
    periods: int | None = None,
    unlimited: bool = False,
    at_ms: int | None = None,
) -> dict[str, Any]:
    """The operator grants a license by hand: from ``starts_on`` (default today) for ``periods`` of
    the tariff (default 1) or ``days``; ``unlimited`` makes a non-expiring "sandbox" license."""
    at = _now(at_ms)
    tz = _tz(core)
    start = starts_on or dates.local_date(at, tz)
    if days is not None and days < 1 or periods is not None and periods < 1:
        raise BillingError(400, "days and periods must be positive")
    async with core.tx() as tx:
        inst = await _instance_row(tx.conn, instance_id)
        tariff = await current_tariff(tx.conn, code)
        if tariff is None:
            raise BillingError(404, f"no current tariff {code!r}")
        end: date | None
        if unlimited:
            end = None
        elif days is not None:
            end = start + dates.DAY * days
        else:
            end = dates.period_end(start, tariff.period_unit, int(tariff.period_count) * (periods or 1))
        start_ms = dates.day_start_ms(start, tz) if starts_on else min(at, dates.day_start_ms(start, tz))
        await _end_free_at(tx.conn, instance_id, start_ms, start, at)
        license_id = await _insert_license(
            tx.conn,
            instance_id=instance_id,
            account_id=inst.account_id,
            tariff_id=int(tariff.id),
            kind="sandbox" if unlimited else "grant",
            starts_on=start.isoformat(),
            ends_on=end.isoformat() if end else None,
            start_ms=start_ms,
            end_ms=dates.day_start_ms(end, tz) if end else None,
            currency=tariff.currency,
            created_ms=at,
        )
        for action in _after_change(core, [instance_id]):
            tx.on_commit(action)
        row = (await tx.conn.execute(select(licenses).where(licenses.c.id == license_id))).first()
    return license_json(row, tariff)


async def _end_free_at(conn: AsyncConnection, instance_id: int, start_ms: int, start: date, at: int) -> None:
    """A free or trial license gives way to a paid or granted one on the day that one starts."""
    for row in await _live_licenses(conn, instance_id, at):
        if row.kind in ("free", "trial") and (row.end_ms is None or int(row.end_ms) > start_ms):
            await conn.execute(
                update(licenses)
                .where(licenses.c.id == row.id)
                .values(ends_on=start.isoformat(), end_ms=max(start_ms, int(row.start_ms)))
            )


async def extend(core: Core, license_id: int, days: int) -> dict[str, Any]:
    """The operator extends a license by ``days`` (its end moves; later licenses are not moved)."""
    if days < 1:
        raise BillingError(400, "days must be positive")
    tz = _tz(core)
    async with core.tx() as tx:
        row = (await tx.conn.execute(select(licenses).where(licenses.c.id == license_id))).first()
        if row is None or row.status != "active":
            raise BillingError(404, f"no active license {license_id}")
        if row.ends_on is None:
            raise BillingError(409, "the license does not expire")
        end = dates.parse_date(row.ends_on) + dates.DAY * days
        await tx.conn.execute(
            update(licenses)
            .where(licenses.c.id == license_id)
            .values(ends_on=end.isoformat(), end_ms=dates.day_start_ms(end, tz), reminders="[]")
        )
        for action in _after_change(core, [int(row.instance_id)]):
            tx.on_commit(action)
        row = (await tx.conn.execute(select(licenses).where(licenses.c.id == license_id))).first()
    return license_json(row)


async def revoke(core: Core, license_id: int, at_ms: int | None = None) -> dict[str, Any]:
    """The operator ends a license now (e.g. a breach of the terms); no refund is made."""
    at = _now(at_ms)
    async with core.tx() as tx:
        row = (await tx.conn.execute(select(licenses).where(licenses.c.id == license_id))).first()
        if row is None or row.status != "active":
            raise BillingError(404, f"no active license {license_id}")
        await tx.conn.execute(
            update(licenses)
            .where(licenses.c.id == license_id)
            .values(status="revoked", ends_on=dates.local_date(at, _tz(core)).isoformat(), end_ms=at)
        )
        for action in _after_change(core, [int(row.instance_id)]):
            tx.on_commit(action)
        row = (await tx.conn.execute(select(licenses).where(licenses.c.id == license_id))).first()
    return license_json(row)


async def instance_status(core: Core, instance_id: int, at_ms: int | None = None) -> dict[str, Any]:
    """The license state of an instance: current license, next ones, quotas used and left (T-06)."""
    at = _now(at_ms)
    tz = _tz(core)
    async with core.read() as conn:
        await _instance_row(conn, instance_id)
        rows = await _live_licenses(conn, instance_id, at)
        tariff_rows = {int(r.tariff_id): await tariff_row(conn, int(r.tariff_id)) for r in rows}
        ever = await conn.scalar(select(licenses.c.id).where(licenses.c.instance_id == instance_id).limit(1))
        policy = await unlicensed_policy_for(core, conn, instance_id) if ever is None else "deny"
    current = _covering(rows, at)
    period = dates.month_key(at, tz)
    lic = getattr(core, "licensing", None)
    used: dict[str, Any] = {"counts": {}, "correspondents": []}
    if lic is not None:
        used = await lic.usage_snapshot(instance_id, period)
    quotas: list[dict[str, Any]] = []
    if current is not None:
        limits = parse_limits(orjson.loads(tariff_rows[int(current.tariff_id)].limits))
        for method, total in sorted(limits.methods.items()):
            count = int(used["counts"].get(method, 0))
            quotas.append({"method": method, "used": count, "total": total, "left": max(0, total - count)})
        if limits.messages_per_month is not None:
            count = int(used["counts"].get("messages", 0))
            total = limits.messages_per_month
            quotas.append(
                {"method": "messages", "used": count, "total": total, "left": max(0, total - count)}
            )
        if limits.correspondents is not None:
            count = len(used["correspondents"])
            total = limits.correspondents
            quotas.append(
                {
                    "method": "correspondents",
                    "used": count,
                    "total": total,
                    "left": max(0, total - count),
                    "chats": used["correspondents"],
                }
            )
    if current is not None:
        state = "active"
    elif not rows and ever is None and policy == "open":
        state = "unlicensed"
    else:
        state = "expired"
    return {
        "instanceId": instance_id,
        "state": state,
        "current": license_json(current, tariff_rows[int(current.tariff_id)])
        if current is not None
        else None,
        "upcoming": [license_json(r, tariff_rows[int(r.tariff_id)]) for r in rows if int(r.start_ms) > at],
        "period": period,
        "periodEndsMs": dates.next_month_start_ms(at, tz),
        "usage": used["counts"],
        "quotas": quotas,
    }


# --- operator requisites (T-27) ------------------------------------------------------------------------


def requisites(core: Core) -> dict[str, str]:
    s = core.settings
    return {
        "legalName": s.operator_legal_name,
        "registrationNumber": s.operator_registration_number,
        "taxId": s.operator_tax_id,
        "address": s.operator_address,
        "bankDetails": s.operator_bank_details,
        "email": s.operator_email,
        "timeZone": s.operator_timezone,
    }


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


def _check_promo(rules: list[pricing.Rule], promo_code: str | None) -> None:
    if promo_code and not any(
        r.promo_code and r.promo_code.casefold() == promo_code.casefold() for r in rules
    ):
        raise BillingError(400, f"unknown promo code {promo_code!r}")


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
                raise BillingError(400, "periods must be an integer from 1 to 120")
            inst = await _instance_row(tx.conn, instance_id)
            if inst.account_id != account_id:
                raise BillingError(404, f"no instance {instance_id}")
            tariff = await current_tariff(tx.conn, str(code or ""))
            if tariff is None:
                raise BillingError(404, f"no current tariff {code!r}")
            if tariff.kind != "paid":
                raise BillingError(400, f"{tariff.code!r} is {tariff.kind}: start it without an invoice")
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
        for action in _after_change(core, touched):
            tx.on_commit(action)
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
            raise BillingError(404, f"no current tariff {code!r}")
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


# --- transfer of rights (T-08) ---------------------------------------------------------------------------


def transfer_json(row: Any) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "fromAccount": int(row.from_account),
        "toAccount": int(row.to_account),
        "licenseIds": orjson.loads(row.license_ids),
        "status": row.status,
        "requestedMs": int(row.requested_ms),
        "decidedMs": row.decided_ms,
        "acceptedMs": row.accepted_ms,
    }


async def _check_transferable(
    conn: AsyncConnection, account_id: int, license_ids: list[int], at: int
) -> None:
    for license_id in license_ids:
        row = (await conn.execute(select(licenses).where(licenses.c.id == license_id))).first()
        if row is None or row.account_id != account_id:
            raise BillingError(404, f"no license {license_id} of this account")
        if row.transferred_from is not None:
            raise BillingError(
                409, f"license {license_id} arrived by a transfer and can never be transferred again"
            )
        if row.status != "active" or (row.end_ms is not None and int(row.end_ms) <= at):
            raise BillingError(409, f"license {license_id} is over")


async def request_transfer(
    core: Core, from_account: int, to_username: str, license_ids: list[int], at_ms: int | None = None
) -> dict[str, Any]:
    at = _now(at_ms)
    if not license_ids or len(set(license_ids)) != len(license_ids):
        raise BillingError(400, "licenseIds must list distinct licenses")
    async with core.tx() as tx:
        to = (
            await tx.conn.execute(
                select(accounts.c.id, accounts.c.role).where(accounts.c.username == to_username)
            )
        ).first()
        if to is None or to.role != "licensee":
            raise BillingError(404, f"no licensee {to_username!r}")
        if int(to.id) == from_account:
            raise BillingError(400, "rights cannot be transferred to the same account")
        await _check_transferable(tx.conn, from_account, license_ids, at)
        pending = (
            await tx.conn.execute(
                select(transfers.c.license_ids).where(transfers.c.status.in_(("requested", "approved")))
            )
        ).all()
        busy = {i for (ids,) in pending for i in orjson.loads(ids)}
        if busy & set(license_ids):
            raise BillingError(409, "a license is already in a pending transfer")
        result = await tx.conn.execute(
            insert(transfers).values(
                from_account=from_account,
                to_account=int(to.id),
                license_ids=orjson.dumps(sorted(license_ids)).decode(),
                status="requested",
                requested_ms=at,
            )
        )
        transfer_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        await add_notice(
            tx.conn,
            int(to.id),
            "transferOffered",
            f"Licenses {sorted(license_ids)} are offered to you (transfer {transfer_id}).",
            {"transferId": transfer_id},
            at,
        )
        row = (await tx.conn.execute(select(transfers).where(transfers.c.id == transfer_id))).first()
    return transfer_json(row)


async def decide_transfer(
    core: Core, operator_id: int, transfer_id: int, approve: bool, at_ms: int | None = None
) -> dict[str, Any]:
    at = _now(at_ms)
    async with core.tx() as tx:
        row = (await tx.conn.execute(select(transfers).where(transfers.c.id == transfer_id))).first()
        if row is None:
            raise BillingError(404, f"no transfer {transfer_id}")
        if row.status != "requested":
            raise BillingError(409, f"transfer {transfer_id} is {row.status}")
        await tx.conn.execute(
            update(transfers)
            .where(transfers.c.id == transfer_id)
            .values(status="approved" if approve else "rejected", decided_ms=at, decided_by=operator_id)
        )
        row = (await tx.conn.execute(select(transfers).where(transfers.c.id == transfer_id))).first()
    return transfer_json(row)


async def accept_transfer(
    core: Core, account_id: int, transfer_id: int, at_ms: int | None = None
) -> dict[str, Any]:
    """The receiver accepts the license agreement: the licenses and their instances move to it."""
    at = _now(at_ms)
    async with core.tx() as tx:
        row = (await tx.conn.execute(select(transfers).where(transfers.c.id == transfer_id))).first()
        if row is None or int(row.to_account) != account_id:
            raise BillingError(404, f"no transfer {transfer_id} to this account")
        if row.status != "approved":
            raise BillingError(409, f"transfer {transfer_id} is {row.status}; the operator approves it first")
        ids = [int(i) for i in orjson.loads(row.license_ids)]
        await _check_transferable(tx.conn, int(row.from_account), ids, at)
        moved: list[int] = []
        for license_id in ids:
            lic = (await tx.conn.execute(select(licenses).where(licenses.c.id == license_id))).first()
            assert lic is not None
            instance_id = int(lic.instance_id)
            await tx.conn.execute(
                update(licenses)
                .where(licenses.c.id == license_id)
                .values(account_id=account_id, transferred_from=int(row.from_account), transferred_ms=at)
            )
            # Licenses of the same instance that start later move with it (they are one right).
            await tx.conn.execute(
                update(licenses)
                .where(
                    (licenses.c.instance_id == instance_id)
                    & (licenses.c.account_id == int(row.from_account))
                    & (licenses.c.start_ms > at)
                )
                .values(account_id=account_id, transferred_from=int(row.from_account), transferred_ms=at)
            )
            await tx.conn.execute(
                update(instances).where(instances.c.id == instance_id).values(account_id=account_id)
            )
            moved.append(instance_id)
        await tx.conn.execute(
            update(transfers).where(transfers.c.id == transfer_id).values(status="accepted", accepted_ms=at)
        )

        def refresh() -> None:
            for instance_id in moved:
                rec = core.instances.peek(instance_id)
                if rec is not None:
                    rec.account_id = account_id

        tx.on_commit(refresh)
        for action in _after_change(core, moved):
            tx.on_commit(action)
        row = (await tx.conn.execute(select(transfers).where(transfers.c.id == transfer_id))).first()
    return transfer_json(row)


async def list_transfers(core: Core, account_id: int | None = None) -> list[dict[str, Any]]:
    query = select(transfers).order_by(transfers.c.id.desc())
    if account_id is not None:
        query = query.where((transfers.c.from_account == account_id) | (transfers.c.to_account == account_id))
    async with core.read() as conn:
        rows = (await conn.execute(query)).all()
    return [transfer_json(r) for r in rows]


# --- notices, overview, revenue ------------------------------------------------------------------------------


async def add_notice(
    conn: AsyncConnection, account_id: int, kind: str, text: str, data: dict[str, Any], at: int
) -> None:
    await conn.execute(
        insert(notices).values(
            account_id=account_id, kind=kind, text=text, data=orjson.dumps(data).decode(), created_ms=at
        )
    )


async def list_notices(core: Core, account_id: int) -> list[dict[str, Any]]:
    async with core.read() as conn:
        rows = (
            await conn.execute(
                select(notices).where(notices.c.account_id == account_id).order_by(notices.c.id.desc())
            )
        ).all()
    return [
        {
            "id": int(r.id),
            "kind": r.kind,
            "text": r.text,
            "data": orjson.loads(r.data),
            "createdMs": int(r.created_ms),
        }
        for r in rows
    ]


async def account_licenses(core: Core, account_id: int | None) -> list[dict[str, Any]]:
    query = select(licenses, tariffs.c.code, tariffs.c.version, tariffs.c.name).join(
        tariffs, tariffs.c.id == licenses.c.tariff_id
    )
    if account_id is not None:
        query = query.where(licenses.c.account_id == account_id)
    async with core.read() as conn:
        rows = (await conn.execute(query.order_by(licenses.c.instance_id, licenses.c.start_ms))).all()
    return [license_json(r, r) for r in rows]


async def overview(core: Core, account_id: int, at_ms: int | None = None) -> dict[str, Any]:
    """The billing section of the personal area (T-06): licenses, quotas, invoices, payments."""
    async with core.read() as conn:
        ids = [
            int(r[0])
            for r in (
                await conn.execute(
                    select(instances.c.id)
                    .where((instances.c.account_id == account_id) & instances.c.deleted_ms.is_(None))
                    .order_by(instances.c.id)
                )
            ).all()
        ]
    statuses = [await instance_status(core, i, at_ms) for i in ids]
    invoice_list = await list_invoices(core, account_id)
    return {
        "instances": statuses,
        "licenses": await account_licenses(core, account_id),
        "invoices": invoice_list,
        "payments": [p for inv in invoice_list for p in inv["payments"]],
        "transfers": await list_transfers(core, account_id),
    }


async def revenue(core: Core, start: date, end: date) -> dict[str, Any]:
    """Payments received from local ``start`` to local ``end`` (inclusive), by month and currency."""
    if end < start:
        raise BillingError(400, "'to' is before 'from'")
    tz = _tz(core)
    lo, hi = dates.day_start_ms(start, tz), dates.day_start_ms(end + dates.DAY, tz)
    async with core.read() as conn:
        rows = (
            await conn.execute(
                select(payments).where((payments.c.received_ms >= lo) & (payments.c.received_ms < hi))
            )
        ).all()
    by_month: dict[str, dict[str, Decimal]] = {}
    totals: dict[str, Decimal] = {}
    for row in rows:
        month = dates.month_key(int(row.received_ms), tz)
        bucket = by_month.setdefault(month, {})
        bucket[row.currency] = bucket.get(row.currency, Decimal(0)) + Decimal(row.amount)
        totals[row.currency] = totals.get(row.currency, Decimal(0)) + Decimal(row.amount)
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "timeZone": core.settings.operator_timezone,
        "payments": len(rows),
        "totals": {c: money.text(v, c) for c, v in sorted(totals.items())},
        "months": [
            {"month": m, "totals": {c: money.text(v, c) for c, v in sorted(b.items())}}
            for m, b in sorted(by_month.items())
        ],
    }

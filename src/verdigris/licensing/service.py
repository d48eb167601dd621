"""Licensing actions: tariffs, the unlicensed policy, licenses, requisites, service notices.

Offers and payments live in :mod:`.billing`, transfers in :mod:`.transfers`, read models in
:mod:`.reports`.

Every state change happens here in one transaction (``core.tx()``). Actions take ``at_ms`` (the
instant they happen, default now) so the calendar rules can be tested exactly. Refusals raise
:class:`BillingError` with an HTTP status and a clear message; nothing has changed then.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import func, insert, select, update

from verdigris.errors import ServiceError
from verdigris.instances.models import instances, workspace_meta
from verdigris.licensing import dates, money
from verdigris.licensing.limits import LimitsError, parse_limits
from verdigris.licensing.models import (
    licenses,
    notices,
    tariffs,
)
from verdigris.messaging import lifecycle
from verdigris.store.changes import EVERY_INSTANCE, LICENCE, changed
from verdigris.store.clock import now_ms
from verdigris.words import plural

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from sqlalchemy.ext.asyncio import AsyncConnection

    from verdigris.core import Core, Tx
    from verdigris.instances.service import InstanceRecord

TARIFF_KINDS = ("paid", "free", "trial")
PERIOD_UNITS = ("month", "day")
POLICY_KEY = "licensing.unlicensed"


class BillingError(ServiceError):
    pass


def _now(at_ms: int | None) -> int:
    return now_ms() if at_ms is None else at_ms


def _tz(core: Core) -> ZoneInfo:
    return dates.zone(core.settings.operator_timezone)


def licences_changed(tx: Tx, instance_ids: list[int]) -> None:
    """The instances' licences change in ``tx``: once it commits, this process reloads their
    entitlements and wakes their send workers (a renewal restores sending); the other processes
    do the same before their next request (store/changes.py)."""
    core = tx.core
    for instance_id in instance_ids:
        changed(tx, LICENCE, instance_id)

    def run() -> None:
        for instance_id in instance_ids:
            core.licensing.forget(instance_id)
            rec = core.instances.peek(instance_id)
            if rec is not None:
                lifecycle.wake(core, rec)

    tx.on_commit(run)


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
    if period_count > (1200 if period_unit == "month" else dates.MAX_DAYS):
        raise BillingError(400, "the period is at most 1200 months or 36600 days")
    if kind == "trial" and trial_days < 1:
        raise BillingError(400, "a trial tariff needs trialDays >= 1")
    if not 0 <= trial_days <= 3650:
        raise BillingError(400, "trialDays is at most 3650")
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
        changed(tx, LICENCE, EVERY_INSTANCE)
    core.licensing.forget_all()
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
                raise BillingError(
                    409, f"tariff {code!r} allows {plural(per_account, 'instance')} per account"
                )
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
        licences_changed(tx, [instance_id])
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
    if (
        days is not None
        and not 1 <= days <= dates.MAX_DAYS
        or periods is not None
        and not 1 <= periods <= 120
    ):
        raise BillingError(400, f"days must be 1 to {dates.MAX_DAYS} and periods 1 to 120")
    if not dates.MIN_YEAR <= start.year <= dates.MAX_YEAR:
        raise BillingError(400, f"startsOn: dates from {dates.MIN_YEAR} to {dates.MAX_YEAR}")
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
        licences_changed(tx, [instance_id])
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
    if not 1 <= days <= dates.MAX_DAYS:
        raise BillingError(400, f"days must be 1 to {dates.MAX_DAYS}")
    tz = _tz(core)
    async with core.tx() as tx:
        row = (await tx.conn.execute(select(licenses).where(licenses.c.id == license_id))).first()
        if row is None or row.status != "active":
            raise BillingError(404, f"no active license {license_id}")
        if row.ends_on is None:
            raise BillingError(409, "the license does not expire")
        end = dates.parse_date(row.ends_on) + dates.DAY * days
        if end.year > dates.MAX_YEAR:
            raise BillingError(400, f"the license would end after {dates.MAX_YEAR}")
        await tx.conn.execute(
            update(licenses)
            .where(licenses.c.id == license_id)
            .values(ends_on=end.isoformat(), end_ms=dates.day_start_ms(end, tz), reminders="[]")
        )
        licences_changed(tx, [int(row.instance_id)])
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
        licences_changed(tx, [int(row.instance_id)])
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
        # Only a license that has started ends the unlicensed policy (one bought today starts
        # tomorrow; until then the instance keeps what it had).
        ever = await conn.scalar(
            select(licenses.c.id)
            .where((licenses.c.instance_id == instance_id) & (licenses.c.start_ms <= at))
            .limit(1)
        )
        policy = await unlicensed_policy_for(core, conn, instance_id) if ever is None else "deny"
    current = _covering(rows, at)
    period = dates.month_key(at, tz)
    used = await core.licensing.usage_snapshot(instance_id, period)
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
    elif ever is None and policy == "open":
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


# --- service notices to accounts ------------------------------------------------------------------------------


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

"""Read models: the billing section of the personal area (T-06) and revenue per period."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from verdigris.instances.models import instances
from verdigris.licensing import dates, money
from verdigris.licensing.models import (
    licenses,
    payments,
    tariffs,
)

if TYPE_CHECKING:
    from verdigris.core import Core

from verdigris.licensing.billing import list_invoices
from verdigris.licensing.service import (
    BillingError,
    _tz,
    instance_status,
    license_json,
)
from verdigris.licensing.transfers import list_transfers


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

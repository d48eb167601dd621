"""The operator's overview: the first page an operator sees (accounts, instances by state,
revenue this period, and what waits for the operator: invoices, screening reviews, transfers)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from starlette.responses import Response

from verdigris.accounts.models import accounts
from verdigris.accounts.records import LICENSEE
from verdigris.console.web import Ctx, Forbidden, Web
from verdigris.core import Core
from verdigris.instances.models import instances
from verdigris.licensing import billing, dates, reports, transfers
from verdigris.screening import service as screening
from verdigris.store.clock import now_ms


class Overview:
    def __init__(self, core: Core, web: Web) -> None:
        self.core = core
        self.web = web

    async def page(self, ctx: Ctx) -> Response:
        if not ctx.account.is_operator:
            raise Forbidden("operator pages")
        async with self.core.read() as conn:
            owners = await conn.scalar(
                select(func.count()).where(
                    (accounts.c.role == LICENSEE)
                    & (accounts.c.tenant_id.is_(None))
                    & accounts.c.closed_ms.is_(None)
                )
            )
            members = await conn.scalar(
                select(func.count()).where((accounts.c.role == LICENSEE) & accounts.c.tenant_id.is_not(None))
            )
            states = (
                await conn.execute(
                    select(instances.c.state, func.count())
                    .where(instances.c.deleted_ms.is_(None))
                    .group_by(instances.c.state)
                    .order_by(instances.c.state)
                )
            ).all()
        today = dates.local_date(now_ms(), dates.zone(self.core.settings.operator_timezone))
        revenue = await reports.revenue(self.core, today.replace(day=1), today)
        invoices = [i for i in await billing.list_invoices(self.core, None) if i["status"] == "issued"]
        reviews = await screening.list_cases(self.core, waiting_only=True)
        waiting_transfers = [
            t for t in await transfers.list_transfers(self.core, None) if t["status"] == "requested"
        ]
        by_state: list[tuple[str, int]] = [(str(s), int(n)) for s, n in states]
        values: dict[str, Any] = {
            "owners": int(owners or 0),
            "members": int(members or 0),
            "states": by_state,
            "instance_total": sum(n for _, n in by_state),
            "revenue": revenue,
            "invoices": invoices,
            "reviews": reviews,
            "transfers": waiting_transfers,
        }
        return self.web.render(ctx, "overview.html", **values)

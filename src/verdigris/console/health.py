"""Instance health in the console: the card on an instance's page (templates/_instance_health.html)
and the operator's list of instances that are authorized but silent (templates/operator_silent.html).
The figures come from messaging.health."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select
from starlette.responses import Response

from verdigris.accounts.models import accounts
from verdigris.console.web import Ctx, Forbidden, Web
from verdigris.core import Core
from verdigris.instances.service import InstanceRecord
from verdigris.messaging import health

DEFAULT_SILENT_HOURS = 24
MAX_SILENT_HOURS = 24 * 366


def lag_words(ms: int) -> str:
    """A lag in words: "none", "40 s", "12 min", "5 h 20 min", "3 d 4 h"."""
    seconds = ms // 1000
    if ms <= 0:
        return "none"
    if seconds < 60:
        return f"{max(seconds, 1)} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


async def instance_values(core: Core, rec: InstanceRecord) -> dict[str, Any]:
    """What _instance_health.html shows for ``rec``."""
    found = await health.of_instance(core, rec)
    return {"health": found, "health_lag": lag_words(found.lag_ms)}


class HealthPages:
    def __init__(self, core: Core, web: Web, instance: Callable[[Ctx], Awaitable[InstanceRecord]]) -> None:
        self.core = core
        self.web = web
        self.instance = instance

    def routes(self) -> list[tuple[str, str, Any]]:
        page = self.web.page
        return [
            ("GET", "/instances/{instance_id}/health", page(self.instance_card)),
            ("GET", "/operator/silent", page(self.silent_page)),
        ]

    async def instance_card(self, ctx: Ctx) -> Response:
        """The health card alone (the instance page refreshes it)."""
        rec = await self.instance(ctx)
        return self.web.render(
            ctx, "_instance_health.html", inst=rec, **(await instance_values(self.core, rec))
        )

    async def silent_page(self, ctx: Ctx) -> Response:
        if not ctx.account.is_operator:
            raise Forbidden("operator pages")
        raw = ctx.request.query_params.get("hours", str(DEFAULT_SILENT_HOURS)).strip()
        try:
            hours = float(raw)
        except ValueError:
            hours = math.nan
        if not (math.isfinite(hours) and 0 < hours <= MAX_SILENT_HOURS):
            return self.web.render(
                ctx,
                "operator_silent.html",
                status=400,
                error=f"Hours must be a number above 0 and at most {MAX_SILENT_HOURS}, got {raw[:20]!r}.",
                hours=raw[:20],
                items=[],
                owners={},
            )
        items = await health.silent(self.core, hours)
        ids = {i.account_id for i in items if i.account_id is not None}
        owners: dict[int, str] = {}
        if ids:
            async with self.core.read() as conn:
                rows = await conn.execute(
                    select(accounts.c.id, accounts.c.username).where(accounts.c.id.in_(ids))
                )
                owners = {int(r.id): str(r.username) for r in rows}
        return self.web.render(
            ctx, "operator_silent.html", error="", hours=f"{hours:g}", items=items, owners=owners
        )

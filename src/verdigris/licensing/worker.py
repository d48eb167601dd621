"""Background licensing work on ``core.timers``: metering flushes, expiry reminders and notices.

* every ``licensing_flush_seconds`` the in-memory call counters are written to the database;
* every ``licensing_sweep_seconds`` licenses that end within one of ``licensing_reminder_days``
  get one reminder per stage (an e-mail to the owner and a service notice in the personal area),
  unless a later license of the same instance already follows; a license that has just ended
  gets an "expired" notice once. Trials end on their date by themselves (the runtime compares
  the end instant); nothing has to run for that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
import structlog
from sqlalchemy import select, update

from verdigris import mail
from verdigris.accounts.models import accounts
from verdigris.licensing import service
from verdigris.licensing.models import licenses, tariffs
from verdigris.store.clock import now_ms

if TYPE_CHECKING:
    from verdigris.core import Core

log = structlog.get_logger("verdigris.licensing")
DAY_MS = 86_400_000
# An ended license is announced as expired if the sweep sees it within this long after its end.
EXPIRED_NOTICE_WINDOW_MS = 3 * DAY_MS


def reminder_stages(text: str) -> list[int]:
    stages = sorted({int(part) for part in text.replace(" ", "").split(",") if part}, reverse=True)
    if any(s < 1 for s in stages):
        raise ValueError("licensing_reminder_days must list positive day counts")
    return stages


class LicensingWorker:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.stages = reminder_stages(core.settings.licensing_reminder_days)

    def start(self) -> None:
        self._plan_flush()
        self.core.timers.schedule(("licensing", "sweep"), now_ms() + 1000, self._sweep_timer)

    def _plan_flush(self) -> None:
        due = now_ms() + int(self.core.settings.licensing_flush_seconds * 1000)
        self.core.timers.schedule(("licensing", "flush"), due, self._flush_timer)

    async def _flush_timer(self) -> None:
        try:
            lic = self.core.licensing
            if lic is not None:
                await lic.flush()
        finally:
            self._plan_flush()

    async def _sweep_timer(self) -> None:
        try:
            await self.sweep()
        finally:
            due = now_ms() + int(self.core.settings.licensing_sweep_seconds * 1000)
            self.core.timers.schedule(("licensing", "sweep"), due, self._sweep_timer)

    async def sweep(self, at_ms: int | None = None) -> int:
        """Send due reminders and expiry notices; returns how many were sent."""
        at = now_ms() if at_ms is None else at_ms
        horizon = at + (self.stages[0] if self.stages else 0) * DAY_MS
        async with self.core.read() as conn:
            rows = (
                await conn.execute(
                    select(
                        licenses, tariffs.c.name.label("tariff_name"), accounts.c.email, accounts.c.username
                    )
                    .join(tariffs, tariffs.c.id == licenses.c.tariff_id)
                    .join(accounts, accounts.c.id == licenses.c.account_id)
                    .where(
                        (licenses.c.status == "active")
                        & licenses.c.end_ms.is_not(None)
                        & (licenses.c.end_ms <= horizon)
                        & (licenses.c.end_ms > at - EXPIRED_NOTICE_WINDOW_MS)
                    )
                )
            ).all()
            followed: set[int] = set()
            for row in rows:
                later = await conn.scalar(
                    select(licenses.c.id)
                    .where(
                        (licenses.c.instance_id == row.instance_id)
                        & (licenses.c.status == "active")
                        & (licenses.c.id != row.id)
                        & (licenses.c.end_ms.is_(None) | (licenses.c.end_ms > row.end_ms))
                    )
                    .limit(1)
                )
                if later is not None:
                    followed.add(int(row.id))
        sent = 0
        for row in rows:
            if int(row.id) in followed or row.replaced_by is not None:
                continue
            done = set(orjson.loads(row.reminders))
            left_ms = int(row.end_ms) - at
            if left_ms <= 0:
                stage = 0
            else:
                due = [s for s in self.stages if left_ms <= s * DAY_MS and s not in done]
                if not due:
                    continue
                stage = min(due)
            if stage in done:
                continue
            marks = done | {s for s in self.stages if s >= stage} | {stage}
            await self._remind(row, stage, sorted(marks), at)
            sent += 1
        return sent

    async def _remind(self, r: Any, stage: int, marks: list[int], at: int) -> None:
        instance_id = int(r.instance_id)
        if stage == 0:
            kind = "licenseExpired"
            subject = f"Instance {instance_id}: license expired"
            text = (
                f'The license "{r.tariff_name}" of instance {instance_id} ended at the start of {r.ends_on}. '
                "Sending has stopped; queued and incoming messages are kept. Renew it in the personal area "
                "to restore service."
            )
        else:
            kind = "licenseExpiring"
            subject = f"Instance {instance_id}: license ends in {stage} day(s)"
            text = (
                f'The license "{r.tariff_name}" of instance {instance_id} is valid until the start of '
                f"{r.ends_on}, at most {stage} day(s) from now. Renew it in the personal area to keep the "
                "instance working."
            )
        data = {"instanceId": instance_id, "licenseId": int(r.id), "endsOn": r.ends_on, "days": stage}
        async with self.core.tx() as tx:
            await tx.conn.execute(
                update(licenses).where(licenses.c.id == r.id).values(reminders=orjson.dumps(marks).decode())
            )
            await service.add_notice(tx.conn, int(r.account_id), kind, text, data, at)
        if r.email:
            # Replies reach the operator's billing address when there is one.
            reply_to = self.core.settings.operator_email
            try:
                await mail.send_mail(
                    self.core, r.email, subject, text, {"Reply-To": reply_to} if reply_to else None
                )
            except Exception:
                log.exception("reminder e-mail failed", license=int(r.id))
        log.info("license reminder", license=int(r.id), stage=stage)

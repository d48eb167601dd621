"""One holder per WhatsApp Web session across server processes (``waweb_leases``).

Each server process has a holder name and asks its gateway to run an instance's session only
while it holds that instance's lease. A lease lasts :data:`LEASE_MS`; the holder renews its leases
every third of that; a process that stops gives its leases up, and one that dies loses them when
they expire, so another process may take them over. Taking a lease is one atomic statement
(an update of a free, expired or own lease, else an insert that the primary key lets only one
process win), so two processes never both believe they hold it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from verdigris.channels.whatsapp_web.models import waweb_leases
from verdigris.store.clock import now_ms

if TYPE_CHECKING:
    from verdigris.core import Core

LEASE_MS = 60_000


async def acquire(core: Core, instance_id: int, holder: str) -> bool:
    """Take or renew the lease of ``instance_id``; False when another live holder has it."""
    now = now_ms()
    async with core.tx() as tx:
        taken = await tx.conn.execute(
            update(waweb_leases)
            .where(
                (waweb_leases.c.instance_id == instance_id)
                & ((waweb_leases.c.holder == holder) | (waweb_leases.c.expires_ms < now))
            )
            .values(holder=holder, expires_ms=now + LEASE_MS)
        )
    if taken.rowcount:
        return True
    try:
        async with core.tx() as tx:
            await tx.conn.execute(
                insert(waweb_leases).values(instance_id=instance_id, holder=holder, expires_ms=now + LEASE_MS)
            )
    except IntegrityError:
        return False  # held by another process (or taken by one a moment ago)
    return True


async def renew(core: Core, holder: str) -> set[int]:
    """Extend every lease ``holder`` still has; returns the instances they are for."""
    async with core.tx() as tx:
        await tx.conn.execute(
            update(waweb_leases).where(waweb_leases.c.holder == holder).values(expires_ms=now_ms() + LEASE_MS)
        )
        rows = (
            await tx.conn.execute(select(waweb_leases.c.instance_id).where(waweb_leases.c.holder == holder))
        ).all()
    return {int(row.instance_id) for row in rows}


async def release(core: Core, holder: str, instance_id: int | None = None) -> None:
    """Give up ``holder``'s lease of ``instance_id`` (all of its leases when None)."""
    cond = waweb_leases.c.holder == holder
    if instance_id is not None:
        cond = cond & (waweb_leases.c.instance_id == instance_id)
    async with core.tx() as tx:
        await tx.conn.execute(delete(waweb_leases).where(cond))

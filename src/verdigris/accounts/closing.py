"""Instance tokens, compromise reports, closing an account and purging what ended (T-15, T-18)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from sqlalchemy import delete, func, select, update

from verdigris.accounts import journal
from verdigris.accounts.journal import Origin
from verdigris.accounts.models import account_links, accounts, partner_tokens, sessions
from verdigris.accounts.policy import PolicyError
from verdigris.accounts.records import (
    CLOSED,
    Account,
)
from verdigris.accounts.service import revoke_where, verify_password
from verdigris.compliance import erasure
from verdigris.instances.models import instances
from verdigris.instances.service import replace_token
from verdigris.store.clock import now_ms
from verdigris.words import plural

if TYPE_CHECKING:
    from verdigris.core import Core, Tx
    from verdigris.instances.service import InstanceRecord


log = structlog.get_logger("verdigris.accounts")


# --- instance tokens, compromise, closing (T-15, T-18) --------------------------------------------


async def _rotate_tokens(tx: Tx, recs: list[InstanceRecord]) -> None:
    for rec in recs:
        await replace_token(tx, rec)


async def tenant_instances(core: Core, tenant_id: int) -> list[InstanceRecord]:
    """The tenant's instances as the cache holds them (so token changes reach the hot path)."""
    async with core.read() as conn:
        ids = [
            int(r[0])
            for r in await conn.execute(
                select(instances.c.id).where(
                    (instances.c.account_id == tenant_id) & instances.c.deleted_ms.is_(None)
                )
            )
        ]
    recs = [await core.instances.get(i) for i in ids]
    return [r for r in recs if r is not None]


async def rotate_instance_token(
    core: Core, actor: Account | None, rec: InstanceRecord, origin: Origin
) -> str:
    """Replace an instance's API token and journal it (``actor`` None: through the API itself)."""
    async with core.tx() as tx:
        await _rotate_tokens(tx, [rec])
        await journal.record(
            tx.conn,
            journal.TOKEN_ROTATED,
            ok=True,
            origin=origin,
            account=actor,
            username="" if actor else "(API)",
            tenant_id=rec.account_id,
            detail=f"instance {rec.id}" + ("" if actor else " via updateApiToken"),
        )
    return rec.token


async def report_compromise(core: Core, account: Account, origin: Origin) -> tuple[int, int]:
    """Credentials leaked: end every session of the account and replace every API token it could see.

    Returns (sessions ended, tokens replaced). Whatever happens with the old credentials after this
    moment is not the user's doing (T-15); the moment is in the journal.
    """
    recs = await tenant_instances(core, account.tenant) if account.can("instance.token") else []
    async with core.tx() as tx:
        ended = await revoke_where(tx.conn, sessions.c.account_id == account.id, "compromise reported")
        await _rotate_tokens(tx, recs)
        await tx.conn.execute(delete(partner_tokens).where(partner_tokens.c.account_id == account.id))
        await journal.record(
            tx.conn,
            journal.COMPROMISE_REPORTED,
            ok=True,
            origin=origin,
            account=account,
            detail=f"{plural(ended, 'session')} ended, {plural(len(recs), 'API token')} replaced",
        )
    return ended, len(recs)


async def close_account(core: Core, account: Account, password: str, confirm: str, origin: Origin) -> int:
    """Close the owner's account (T-18): blocked at once, data deleted after the grace period.

    Returns the moment (ms) after which the data is deleted.
    """
    if not account.can("close"):
        raise PolicyError("only the owner can close the account")
    if confirm.strip().lower() != account.username:
        raise PolicyError("type your username to confirm", field="confirm")
    if not verify_password(account.password_hash, password):
        raise PolicyError("password: wrong")
    at = now_ms()
    delete_after = at + core.settings.account_delete_grace_seconds * 1000
    recs = await tenant_instances(core, account.tenant)
    team = (accounts.c.id == account.id) | (accounts.c.tenant_id == account.id)
    async with core.tx() as tx:
        await tx.conn.execute(
            update(accounts).where(team).values(status=CLOSED, closed_ms=at, delete_after_ms=delete_after)
        )
        member_ids = select(accounts.c.id).where(team)
        await revoke_where(tx.conn, sessions.c.account_id.in_(member_ids), "account closed")
        await _rotate_tokens(tx, recs)  # the API refuses the old tokens from now on
        await tx.conn.execute(delete(partner_tokens).where(partner_tokens.c.account_id == account.id))
        await journal.record(
            tx.conn,
            journal.ACCOUNT_CLOSED,
            ok=True,
            origin=origin,
            account=account,
            detail=f"data deleted after {delete_after}",
        )
    schedule_purge(core, delete_after)
    return delete_after


async def purge_closed(core: Core) -> int:
    """Delete every closed account whose grace period is over, with its team, instances and data."""
    at = now_ms()
    async with core.read() as conn:
        due = [
            int(r[0])
            for r in await conn.execute(
                select(accounts.c.id).where(
                    (accounts.c.status == CLOSED)
                    & accounts.c.tenant_id.is_(None)
                    & (accounts.c.delete_after_ms <= at)
                )
            )
        ]
    for owner_id in due:
        done = await erasure.erase(core, owner_id)
        log.info("closed account deleted", account_id=owner_id, instances=done.instances, rows=done.rows)
    return len(due)


# Ended sessions and used links are kept this long (so a replayed cookie is still recognised).
KEEP_ENDED_MS = 30 * 86_400_000
HOUSEKEEPING_EVERY_MS = 3_600_000


async def purge_stale(core: Core) -> int:
    """Drop session rows and e-mail links that ended more than KEEP_ENDED_MS ago."""
    cutoff = now_ms() - KEEP_ENDED_MS
    async with core.tx() as tx:
        gone = await tx.conn.execute(
            delete(sessions).where((sessions.c.expires_ms < cutoff) | (sessions.c.revoked_ms < cutoff))
        )
        links = await tx.conn.execute(delete(account_links).where(account_links.c.expires_ms < cutoff))
    return int(gone.rowcount or 0) + int(links.rowcount or 0)


def schedule_purge(core: Core, due_ms: int) -> None:
    async def run() -> None:
        await purge_and_plan(core)

    core.timers.schedule("accounts-purge", due_ms, run)


async def purge_and_plan(core: Core) -> None:
    """Delete closed accounts whose grace period is over and stale sessions; plan the next run.

    Runs on start, then hourly or when the next closed account falls due, whichever is first.
    """
    await purge_closed(core)
    await purge_stale(core)
    async with core.read() as conn:
        next_due = await conn.scalar(
            select(func.min(accounts.c.delete_after_ms)).where(
                (accounts.c.status == CLOSED) & accounts.c.tenant_id.is_(None)
            )
        )
    hourly = now_ms() + HOUSEKEEPING_EVERY_MS
    schedule_purge(core, min(hourly, int(next_due)) if next_due is not None else hourly)

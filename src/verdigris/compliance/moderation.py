"""The operator's measures on accounts (T-16): block, restrict, suspend, unblock, delete.

A measure is one row of ``account_measures`` per account; every change is one transaction that
also writes the moderation audit log (and the account's own journal, so its users see it).

* **blocked**: no console login (its sessions end at once), every wire and partner API call of
  its instances answers 403, its instances send nothing and nothing is pushed to their webhooks
  (queued messages and notifications wait, nothing is lost).
* **suspended** until a moment: the same as blocked, lifted by itself at that moment.
* **restricted** (read-only): the console and the API work, but nothing is sent: the sending
  methods answer 403 and queued messages wait.
* **unblock** lifts any measure; the instances' queues are sent again.
* **delete**: irreversible erasure (``accounts.erasure``).

A measure on a licensee account that owns instances applies to its whole team; a measure on a
team member applies to that member's login only (the instances belong to the owner).

Hot path: the wire router asks :meth:`Moderation.wire_refusal`, the send worker
:meth:`Moderation.may_send` and the webhook dispatcher :meth:`Moderation.may_push`: dictionary lookups in memory, kept current by this module's actions
changes made by other processes sharing a PostgreSQL store are applied before the next request
(``store/changes.py``), and everything is re-read every ``RELOAD_MS`` besides.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import delete, insert, select, update

from verdigris import safetext
from verdigris.accounts import journal
from verdigris.accounts.closing import tenant_instances
from verdigris.accounts.journal import Origin
from verdigris.accounts.models import account_measures, accounts, moderation_log, sessions
from verdigris.accounts.policy import PolicyError
from verdigris.accounts.records import CLOSED, Account, account_from_row, load_account
from verdigris.accounts.service import revoke_where
from verdigris.compliance import erasure
from verdigris.messaging import lifecycle
from verdigris.store.changes import ACCOUNT, changed
from verdigris.store.clock import now_ms
from verdigris.words import plural

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from verdigris.core import Core

log = structlog.get_logger("verdigris.moderation")

BLOCKED, RESTRICTED, SUSPENDED = "blocked", "restricted", "suspended"
KINDS = (BLOCKED, RESTRICTED, SUSPENDED)
# Audit log actions besides the three kinds.
UNBLOCKED, SUSPENSION_ENDED, DELETED = "unblocked", "suspension_ended", "deleted"

RELOAD_MS = 30_000
MAX_REASON = 400


# Journal kinds (the account's own journal shows what the operator did to it).
J_MEASURE = "moderation_measure"
J_LIFTED = "moderation_lifted"


@dataclass(frozen=True, slots=True)
class Measure:
    account_id: int
    kind: str
    reason: str
    until_ms: int | None
    set_ms: int

    def active(self, at_ms: int) -> bool:
        return self.until_ms is None or at_ms < self.until_ms

    @property
    def locks_out(self) -> bool:
        """No login, no API (blocked or suspended)."""
        return self.kind in (BLOCKED, SUSPENDED)

    def describe(self) -> str:
        """The user-facing sentence (console refusals and wire 403 messages)."""
        if self.kind == SUSPENDED and self.until_ms is not None:
            return f"The account is suspended by the operator until {_utc(self.until_ms)}: {self.reason}"
        if self.kind == RESTRICTED:
            return f"The account is restricted by the operator to reading (nothing is sent): {self.reason}"
        return f"The account is blocked by the operator: {self.reason}"


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _measure(row: Any) -> Measure:
    return Measure(
        int(row.account_id),
        row.kind,
        row.reason,
        int(row.until_ms) if row.until_ms is not None else None,
        int(row.set_ms),
    )


class Moderation:
    """The measures of one process, in memory (installed as ``core.moderation``)."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self._measures: dict[int, Measure] = {}
        # Counts targeted changes, so a full re-read that overlapped one is not kept (it may
        # predate the change).
        self._generation = 0

    async def load(self) -> None:
        while True:
            generation = self._generation
            async with self.core.read() as conn:
                rows = (await conn.execute(select(account_measures))).all()
            if generation == self._generation:
                break
        self._measures = {int(r.account_id): _measure(r) for r in rows}

    async def refresh(self, account_id: int, conn: AsyncConnection) -> None:
        """Another process set or lifted the account's measure (store/changes.py): read it again;
        a lifted measure lets the account's held queues go."""
        self._generation += 1
        row = (
            await conn.execute(select(account_measures).where(account_measures.c.account_id == account_id))
        ).first()
        had = self._measures.get(account_id)
        if row is None:
            self.drop(account_id)
            if had is not None:
                target = await load_account(conn, account_id)
                if target is not None:
                    await _wake(self.core, target)
        else:
            self.set(_measure(row))

    async def start(self) -> None:
        """Load the measures, plan the end of suspensions and the periodic re-read."""
        await self.load()
        await lift_ended(self.core)

        async def reload() -> None:
            await self.load()
            self.core.timers.schedule(("moderation", "reload"), now_ms() + RELOAD_MS, reload)

        self.core.timers.schedule(("moderation", "reload"), now_ms() + RELOAD_MS, reload)

    def set(self, measure: Measure) -> None:
        self._generation += 1
        self._measures[measure.account_id] = measure

    def drop(self, account_id: int) -> None:
        self._generation += 1
        self._measures.pop(account_id, None)

    def measure(self, account_id: int | None) -> Measure | None:
        """The measure in force on ``account_id`` now, if any."""
        if account_id is None or not self._measures:
            return None
        found = self._measures.get(account_id)
        if found is None or not found.active(now_ms()):
            return None
        return found

    def of(self, account: Account) -> Measure | None:
        """The measure that applies to a user: its own, else its team owner's."""
        return self.measure(account.id) or (
            self.measure(account.tenant) if account.tenant != account.id else None
        )

    def wire_refusal(self, account_id: int | None, acts: bool) -> str | None:
        """Why a wire call of an instance owned by ``account_id`` is refused (403), or None;
        ``acts``: the call puts something on the messenger network (the method registry says)."""
        if not self._measures:
            return None
        found = self.measure(account_id)
        if found is None:
            return None
        if found.kind == RESTRICTED and not acts:
            return None
        return "Forbidden. " + found.describe()

    def may_send(self, account_id: int | None) -> bool:
        """Whether the send worker may deliver queued messages of the account's instances."""
        return self.measure(account_id) is None

    def may_push(self, account_id: int | None) -> bool:
        """Whether notifications of the account's instances may be pushed to their webhooks."""
        found = self.measure(account_id)
        return found is None or not found.locks_out


def runtime(core: Core) -> Moderation:
    return core.moderation


# --- reading ----------------------------------------------------------------------------------


async def measure_in_store(conn: AsyncConnection, account: Account) -> Measure | None:
    """The measure on the user or its team owner, read from the store (for logins)."""
    ids = sorted({account.id, account.tenant})
    rows = (await conn.execute(select(account_measures).where(account_measures.c.account_id.in_(ids)))).all()
    at = now_ms()
    found = [m for m in map(_measure, rows) if m.active(at)]
    found.sort(key=lambda m: m.account_id != account.id)
    return found[0] if found else None


async def log_entries(core: Core, account_id: int | None = None, limit: int = 500) -> list[dict[str, Any]]:
    query = select(moderation_log).order_by(moderation_log.c.id.desc()).limit(limit)
    if account_id is not None:
        query = query.where(moderation_log.c.account_id == account_id)
    async with core.read() as conn:
        rows = (await conn.execute(query)).all()
    return [dict(r._mapping) for r in rows]


async def accounts_overview(core: Core, search: str = "", limit: int = 500) -> list[dict[str, Any]]:
    """Accounts with their measure (for the operator's list), newest first."""
    query = (
        select(accounts, account_measures.c.kind.label("measure"), account_measures.c.until_ms)
        .outerjoin(account_measures, account_measures.c.account_id == accounts.c.id)
        .order_by(accounts.c.id.desc())
        .limit(limit)
    )
    text = search.strip().lower()[:100]
    if safetext.problem(text):
        return []  # such text is in no account (and PostgreSQL cannot even compare it)
    if text:
        pattern = f"%{text}%"
        query = query.where(
            accounts.c.username.like(pattern)
            | accounts.c.email.ilike(pattern)
            | accounts.c.name.ilike(pattern)
            | accounts.c.organisation.ilike(pattern)
        )
    async with core.read() as conn:
        rows = (await conn.execute(query)).all()
    return [dict(r._mapping) for r in rows]


# --- actions ----------------------------------------------------------------------------------


def check_reason(reason: str) -> str:
    text = " ".join(reason.split())
    if len(text) < 3:
        raise PolicyError("reason: say why (at least 3 characters); it is recorded in the audit log")
    if len(text) > MAX_REASON:
        raise PolicyError(f"reason: at most {MAX_REASON} characters")
    if safetext.problem(text):
        raise PolicyError("reason: contains characters that cannot be stored")
    return text


async def _target(conn: AsyncConnection, operator: Account, account_id: int) -> Account:
    target = await load_account(conn, account_id)
    if target is None:
        raise LookupError(account_id)
    if target.is_operator:
        raise PolicyError("operator accounts are not moderated here")
    if target.id == operator.id:
        raise PolicyError("you cannot moderate your own account")
    return target


def _label(target: Account) -> str:
    return f"{target.username} <{target.email}>"[:300]


async def _audit(
    conn: AsyncConnection,
    operator: Account,
    action: str,
    target: Account | None,
    reason: str,
    *,
    until_ms: int | None = None,
    detail: str = "",
    label: str = "",
) -> None:
    await conn.execute(
        insert(moderation_log).values(
            at_ms=now_ms(),
            operator_id=operator.id,
            operator=operator.username[:64],
            action=action,
            account_id=target.id if target else None,
            target=label or (_label(target) if target else ""),
            reason=reason,
            until_ms=until_ms,
            detail=detail[:400],
        )
    )


def _affected(target: Account) -> Any:
    """The accounts whose sessions a lock-out ends: an owner's whole team, or one member."""
    if target.tenant_id is None:
        return (accounts.c.id == target.id) | (accounts.c.tenant_id == target.id)
    return accounts.c.id == target.id


async def apply(
    core: Core,
    operator: Account,
    account_id: int,
    kind: str,
    reason: str,
    origin: Origin,
    until_ms: int | None = None,
) -> Measure:
    """Block, restrict or suspend (``until_ms`` required, in the future) an account."""
    if kind not in KINDS:
        raise PolicyError(f"measure: one of {', '.join(KINDS)}")
    why = check_reason(reason)
    at = now_ms()
    if kind == SUSPENDED:
        if until_ms is None or until_ms <= at:
            raise PolicyError("until: a moment in the future")
    else:
        until_ms = None
    async with core.tx() as tx:
        target = await _target(tx.conn, operator, account_id)
        if target.status == CLOSED:
            raise PolicyError("the account is closed and waits for deletion; delete it instead")
        await tx.conn.execute(delete(account_measures).where(account_measures.c.account_id == target.id))
        changed(tx, ACCOUNT, target.id)
        await tx.conn.execute(
            insert(account_measures).values(
                account_id=target.id, kind=kind, reason=why, until_ms=until_ms, set_ms=at, set_by=operator.id
            )
        )
        ended = 0
        if kind != RESTRICTED:
            member_ids = select(accounts.c.id).where(_affected(target))
            ended = await revoke_where(tx.conn, sessions.c.account_id.in_(member_ids), f"account {kind}")
        detail = f"{plural(ended, 'session')} ended" if ended else ""
        await _audit(tx.conn, operator, kind, target, why, until_ms=until_ms, detail=detail)
        await journal.record(
            tx.conn,
            J_MEASURE,
            ok=True,
            origin=origin,
            account=target,
            detail=f"{kind} by the operator: {why}",
        )
    measure = Measure(target.id, kind, why, until_ms, at)
    runtime(core).set(measure)
    if until_ms is not None:
        _plan_lift(core, until_ms)
    log.info("account measure", account_id=target.id, kind=kind)
    return measure


async def lift(core: Core, operator: Account, account_id: int, reason: str, origin: Origin) -> None:
    """Unblock: remove any measure; queued messages of the account's instances go out again."""
    why = check_reason(reason)
    async with core.tx() as tx:
        target = await _target(tx.conn, operator, account_id)
        removed = await tx.conn.execute(
            delete(account_measures).where(account_measures.c.account_id == target.id)
        )
        if not removed.rowcount:
            raise PolicyError("the account has no measure to lift")
        changed(tx, ACCOUNT, target.id)
        await _audit(tx.conn, operator, UNBLOCKED, target, why)
        await journal.record(
            tx.conn, J_LIFTED, ok=True, origin=origin, account=target, detail=f"lifted by the operator: {why}"
        )
    runtime(core).drop(target.id)
    await _wake(core, target)


async def _wake(core: Core, target: Account) -> None:
    """A measure ended: the held queues of the account's instances go out (messages, webhooks)."""
    if target.tenant_id is not None:
        return
    for rec in await tenant_instances(core, target.id):
        lifecycle.wake(core, rec)
        core.dispatcher.wake(rec.id)


async def lift_ended(core: Core) -> int:
    """Remove suspensions whose time is over (recorded in the audit log); plan the next one."""
    at = now_ms()
    async with core.tx() as tx:
        rows = (
            await tx.conn.execute(
                select(account_measures).where(
                    account_measures.c.until_ms.isnot(None) & (account_measures.c.until_ms <= at)
                )
            )
        ).all()
        ended: list[Account] = []
        for row in rows:
            await tx.conn.execute(
                delete(account_measures).where(account_measures.c.account_id == row.account_id)
            )
            changed(tx, ACCOUNT, int(row.account_id))
            target = await load_account(tx.conn, int(row.account_id))
            if target is None:
                continue
            ended.append(target)
            await tx.conn.execute(
                insert(moderation_log).values(
                    at_ms=at,
                    operator_id=None,
                    operator="(system)",
                    action=SUSPENSION_ENDED,
                    account_id=target.id,
                    target=_label(target),
                    reason=row.reason,
                    until_ms=row.until_ms,
                    detail="the suspension ran out",
                )
            )
        following = await tx.conn.scalar(
            select(account_measures.c.until_ms)
            .where(account_measures.c.until_ms.isnot(None))
            .order_by(account_measures.c.until_ms)
            .limit(1)
        )
    for target in ended:
        runtime(core).drop(target.id)
        await _wake(core, target)
    if following is not None:
        _plan_lift(core, int(following))
    return len(ended)


def _plan_lift(core: Core, due_ms: int) -> None:
    async def run() -> None:
        await lift_ended(core)

    core.timers.schedule(("moderation", "lift"), due_ms, run)


async def delete_account(
    core: Core, operator: Account, account_id: int, reason: str, confirm: str, origin: Origin
) -> erasure.Erased:
    """Delete an account (an owner: with its team, instances and all their data) irreversibly."""
    why = check_reason(reason)
    async with core.read() as conn:
        target = await _target(conn, operator, account_id)
    if confirm.strip() != target.username:
        raise PolicyError("type the account's username to confirm the deletion")
    reference = erasure.new_reference()
    async with core.tx() as tx:
        await _audit(tx.conn, operator, DELETED, target, why, label=reference)
    done = await erasure.erase(core, target.id, reference)
    async with core.tx() as tx:
        await tx.conn.execute(
            update(moderation_log)
            .where((moderation_log.c.target == reference) & (moderation_log.c.action == DELETED))
            .values(detail=done.summary()[:400])
        )
    runtime(core).drop(target.id)
    return done


async def account_with_team(core: Core, account_id: int) -> tuple[Account, list[Account]] | None:
    """An account and, for an owner, its team members (for the operator's account page)."""
    async with core.read() as conn:
        target = await load_account(conn, account_id)
        if target is None:
            return None
        members: list[Account] = []
        if target.tenant_id is None:
            rows = (
                await conn.execute(
                    select(accounts).where(accounts.c.tenant_id == target.id).order_by(accounts.c.id)
                )
            ).all()
            members = [account_from_row(r) for r in rows]
    return target, members

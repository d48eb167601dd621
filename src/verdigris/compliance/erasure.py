"""Irreversible deletion of an account and everything of it (T-16 deletion, T-18 after the grace period).

What belongs to an account: its row and its team members' rows; every row keyed by one of those
account ids (``account_id`` columns: sessions, consents, links, partner tokens, licenses,
invoices, notices, measures...); every row keyed by one of its instances (``instance_id``
columns: messages, notifications, webhook state and logs, licenses and usage, phonebook, calls,
state history...), deleted instances included; the rows that hang off its invoices; its entries in
the auth-event journal; its media files (rows and bytes) and the mails and SMS to it in the outbox.

The tables are walked generically (``metadata.sorted_tables``, children first), so a table added
later that keys its rows by ``account_id`` or ``instance_id`` is covered without touching this
module; tables that name the account differently are listed in :data:`EXTRA_KEYS`, and the
customer database (whose tags and campaign recipients hang off contacts and campaigns) is erased
by its own service.
The moderation audit log is not deleted: its entries about the account are anonymised.

What stays: the operator's accounting records, i.e. paid invoices with their lines and payments,
anonymised (buyer replaced by the erasure reference, account id 0, no instance); what other people received from the account (messages in other instances' journals
and in sandbox phones, which model the messenger outside the platform); a media link they hold
answers 404, because the file is gone.
"""

from __future__ import annotations

import email
import email.policy
import re
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from sqlalchemy import ColumnElement, Table, delete, or_, select, update

from verdigris.accounts.models import accounts, auth_events, moderation_log
from verdigris.customers import service as customers
from verdigris.instances.models import instances
from verdigris.mail import outbox_dir
from verdigris.store.changes import ACCOUNT, INSTANCE, changed
from verdigris.store.db import metadata
from verdigris.words import plural

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from verdigris.core import Core

log = structlog.get_logger("verdigris.accounts")

# Columns other than ``account_id`` that hold an account id (table name -> column names).
EXTRA_KEYS: dict[str, tuple[str, ...]] = {
    "license_transfers": ("from_account", "to_account"),
    "auth_events": ("tenant_id",),
}


@dataclass
class Erased:
    """What one erasure removed (for the audit log and the operator's answer)."""

    reference: str
    accounts: int = 0
    instances: int = 0
    rows: int = 0
    files: int = 0
    mails: int = 0
    tables: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"{plural(self.accounts, 'account')}, {plural(self.instances, 'instance')}, "
            f"{plural(self.rows, 'row')}, {plural(self.files, 'media file')}, "
            f"{plural(self.mails, 'outbox mail')} deleted"
        )


def new_reference() -> str:
    """A random name for an erased account in the audit log (nothing maps it back)."""
    return "erased-" + secrets.token_hex(5)


async def _ids(conn: AsyncConnection, query: Any) -> list[int]:
    return [int(r[0]) for r in await conn.execute(query)]


def _conditions(
    table: Table, account_ids: list[int], instance_ids: list[int], invoice_ids: list[int]
) -> list[ColumnElement[bool]]:
    cols = table.c
    found: list[ColumnElement[bool]] = []
    if "account_id" in cols:
        found.append(cols.account_id.in_(account_ids))
    for name in EXTRA_KEYS.get(table.name, ()):
        if name in cols:
            found.append(cols[name].in_(account_ids))
    if instance_ids and "instance_id" in cols:
        found.append(cols.instance_id.in_(instance_ids))
    if invoice_ids and "invoice_id" in cols:
        found.append(cols.invoice_id.in_(invoice_ids))
    if table.name == "media_files" and instance_ids:
        found.append(cols.owner.in_([str(i) for i in instance_ids]))
    return found


async def erase(core: Core, account_id: int, reference: str | None = None) -> Erased:
    """Delete the account (an owner: with its team and instances; a member: itself) for good."""
    done = Erased(reference or new_reference())
    async with core.tx() as tx:
        conn = tx.conn
        row = (await conn.execute(select(accounts).where(accounts.c.id == account_id))).first()
        if row is None:
            return done
        owner = row.tenant_id is None
        account_ids = (
            await _ids(
                conn,
                select(accounts.c.id).where(
                    (accounts.c.id == account_id) | (accounts.c.tenant_id == account_id)
                ),
            )
            if owner
            else [account_id]
        )
        people = (
            await conn.execute(
                select(accounts.c.username, accounts.c.email, accounts.c.phone).where(
                    accounts.c.id.in_(account_ids)
                )
            )
        ).all()
        instance_ids = (
            await _ids(conn, select(instances.c.id).where(instances.c.account_id.in_(account_ids)))
            if owner
            else []
        )
        # Paid invoices, their lines and payments are the operator's accounting records: they stay,
        # stripped of everything that pointed at the account; other invoices (offers never paid) go.
        kept = await _keep_accounting(conn, account_ids, done.reference)
        invoice_ids = [i for i in await _invoices(conn, account_ids) if i not in kept]
        # Failed logins typed with its username or address carry no account id: delete them too.
        names = [p.username for p in people] + [p.email for p in people if p.email]
        await _count(
            done,
            "auth_events",
            await conn.execute(delete(auth_events).where(auth_events.c.username.in_(names))),
        )
        if owner:  # contact tags and campaign recipients hang off the tenant's contacts and campaigns
            await customers.erase_account(conn, account_id)
        for table in reversed(metadata.sorted_tables):
            if table is moderation_log:
                continue
            if table is accounts:
                conditions: list[ColumnElement[bool]] = [accounts.c.id.in_(account_ids)]
            else:
                conditions = _conditions(table, account_ids, instance_ids, invoice_ids)
            if conditions:
                await _count(done, table.name, await conn.execute(delete(table).where(or_(*conditions))))
        await conn.execute(
            update(moderation_log)
            .where(moderation_log.c.account_id.in_(account_ids))
            .values(account_id=None, target=done.reference)
        )
        for instance_id in instance_ids:
            changed(tx, INSTANCE, instance_id)
        for gone in account_ids:
            changed(tx, ACCOUNT, gone)
    done.accounts = len(account_ids)
    done.instances = len(instance_ids)
    for instance_id in instance_ids:
        core.instances.forget(instance_id)
        core.sender.forget(instance_id)
        core.licensing.drop(instance_id)
        await core.media.store.delete_owner(str(instance_id))
    done.files = done.tables.get("media_files", 0)
    done.mails = _delete_outbox(
        core, {p.email.lower() for p in people if p.email}, {p.phone for p in people if p.phone}
    )
    log.info("account erased", reference=done.reference, summary=done.summary())
    return done


async def _invoices(conn: AsyncConnection, account_ids: list[int]) -> list[int]:
    table = metadata.tables.get("invoices")
    if table is None or "account_id" not in table.c:
        return []
    return await _ids(conn, select(table.c.id).where(table.c.account_id.in_(account_ids)))


async def _keep_accounting(conn: AsyncConnection, account_ids: list[int], reference: str) -> set[int]:
    """Anonymise the account's paid invoices and their lines (payments hang off the invoice and carry
    no personal data): the buyer becomes the erasure reference, the account id 0 (no account has
    it), and lines lose the instance. Returns the ids of the invoices kept."""
    invoices = metadata.tables.get("invoices")
    lines = metadata.tables.get("invoice_lines")
    if invoices is None or lines is None:
        return set()
    kept = set(
        await _ids(
            conn,
            select(invoices.c.id).where(
                invoices.c.account_id.in_(account_ids) & (invoices.c.status == "paid")
            ),
        )
    )
    if not kept:
        return kept
    buyer = orjson.dumps({"accountId": 0, "username": reference, "name": "", "email": "", "erased": True})
    await conn.execute(
        update(invoices).where(invoices.c.id.in_(kept)).values(account_id=0, buyer=buyer.decode())
    )
    for row in (
        await conn.execute(select(lines.c.id, lines.c.description).where(lines.c.invoice_id.in_(kept)))
    ).all():
        # "License "Business" (v1), 1 month, instance 1234": the tariff and period stay.
        description = re.sub(r", instance \d+$", "", row.description)
        await conn.execute(
            update(lines).where(lines.c.id == row.id).values(instance_id=None, description=description)
        )
    return kept


async def _count(done: Erased, table: str, result: Any) -> None:
    count = int(result.rowcount or 0)
    if count:
        done.tables[table] = done.tables.get(table, 0) + count
        done.rows += count


def _delete_outbox(core: Core, addresses: set[str], phones: set[str]) -> int:
    """Mails and SMS the platform wrote to the outbox for these addresses and numbers."""
    folder = outbox_dir(core)
    if not folder.is_dir() or not (addresses or phones):
        return 0
    removed = 0
    for path in folder.iterdir():
        try:
            if path.suffix == ".eml":
                message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                hit = str(message.get("To", "")).strip().lower() in addresses
            elif path.suffix == ".sms":
                hit = path.read_text(errors="replace").split("\n", 1)[0].strip() in phones
            else:
                continue
            if hit:
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed

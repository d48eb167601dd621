"""Versions of the user agreement (T-17): the operator publishes, users accept.

The operator publishes a version (its label, title, text and whether it *requires acceptance*);
the newest published version is the current one. Before any version is published the current
version is ``settings.agreement_version`` (the text the operator shows elsewhere).

A user must accept when a version that requires acceptance was published after the version the
user last accepted (or the user accepted a version that was never published here). The console
then sends the user to the accept page before anything else. Acceptances are ``consents`` rows of
kind ``agreement`` with the version and the moment, as registration records them. Operators
publish the agreement and are not asked to accept it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select

from verdigris import safetext
from verdigris.accounts import journal
from verdigris.accounts.journal import Origin
from verdigris.accounts.models import agreement_versions, consents
from verdigris.accounts.policy import PolicyError
from verdigris.accounts.records import Account
from verdigris.store.clock import now_ms

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from verdigris.core import Core

AGREEMENT = "agreement"
MAX_TEXT = 200_000
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
J_ACCEPTED = "agreement_accepted"
J_PUBLISHED = "agreement_published"


@dataclass(frozen=True, slots=True)
class Version:
    id: int
    version: str
    title: str
    text: str
    requires_acceptance: bool
    published_ms: int


def _version(row: Any) -> Version:
    return Version(
        int(row.id), row.version, row.title, row.text, bool(row.requires_acceptance), int(row.published_ms)
    )


async def current(conn: AsyncConnection) -> Version | None:
    row = (
        await conn.execute(select(agreement_versions).order_by(agreement_versions.c.id.desc()).limit(1))
    ).first()
    return _version(row) if row else None


async def current_label(conn: AsyncConnection, core: Core) -> str:
    """The version a new user accepts at registration."""
    found = await current(conn)
    return found.version if found else core.settings.agreement_version


async def get(core: Core, version: str) -> Version | None:
    async with core.read() as conn:
        row = (
            await conn.execute(select(agreement_versions).where(agreement_versions.c.version == version[:32]))
        ).first()
    return _version(row) if row else None


async def versions(core: Core) -> list[Version]:
    async with core.read() as conn:
        rows = (await conn.execute(select(agreement_versions).order_by(agreement_versions.c.id.desc()))).all()
    return [_version(r) for r in rows]


async def latest(core: Core) -> Version | None:
    async with core.read() as conn:
        return await current(conn)


async def accepted_version(conn: AsyncConnection, account_id: int) -> str | None:
    return await conn.scalar(
        select(consents.c.version)
        .where((consents.c.account_id == account_id) & (consents.c.kind == AGREEMENT) & consents.c.granted)
        .order_by(consents.c.id.desc())
        .limit(1)
    )


async def pending_for(core: Core, account: Account) -> Version | None:
    """The version the user must accept before going on, or None."""
    if account.is_operator:
        return None
    async with core.read() as conn:
        required = await conn.scalar(
            select(func.max(agreement_versions.c.id)).where(agreement_versions.c.requires_acceptance)
        )
        if required is None:
            return None
        accepted = await accepted_version(conn, account.id)
        accepted_id = (
            await conn.scalar(select(agreement_versions.c.id).where(agreement_versions.c.version == accepted))
            if accepted is not None
            else None
        )
        if accepted_id is not None and int(accepted_id) >= int(required):
            return None
        return await current(conn)


async def publish(
    core: Core,
    operator: Account,
    version: str,
    title: str,
    text: str,
    requires_acceptance: bool,
    origin: Origin,
) -> Version:
    if not operator.is_operator:
        raise PolicyError("only the operator publishes the agreement")
    label = version.strip()
    if not _VERSION.match(label):
        raise PolicyError("version: 1 to 32 letters, digits, '.', '_' or '-' (e.g. 2026-12 or 3.1)")
    heading = " ".join(title.split())
    if not heading or len(heading) > 200:
        raise PolicyError("title: 1 to 200 characters")
    body = text.replace("\r\n", "\n").strip()
    if not body:
        raise PolicyError("text: the agreement text is required")
    if len(body) > MAX_TEXT:
        raise PolicyError(f"text: at most {MAX_TEXT} characters")
    if safetext.problem(body) or safetext.problem(heading):
        raise PolicyError("text: contains characters that cannot be stored")
    at = now_ms()
    async with core.tx() as tx:
        taken = await tx.conn.scalar(
            select(agreement_versions.c.id).where(agreement_versions.c.version == label)
        )
        if taken is not None:
            raise PolicyError(f"version: {label!r} is already published; a published text never changes")
        result = await tx.conn.execute(
            insert(agreement_versions).values(
                version=label,
                title=heading,
                text=body,
                requires_acceptance=requires_acceptance,
                published_ms=at,
                published_by=operator.id,
            )
        )
        await journal.record(
            tx.conn,
            J_PUBLISHED,
            ok=True,
            origin=origin,
            account=operator,
            detail=f"version {label}" + (" (requires acceptance)" if requires_acceptance else ""),
        )
    return Version(int(result.inserted_primary_key[0]), label, heading, body, requires_acceptance, at)  # type: ignore[index]


async def accept(core: Core, account: Account, version: str, origin: Origin) -> None:
    """Record that the user accepted ``version``, which must be the current one."""
    async with core.tx() as tx:
        found = await current(tx.conn)
        if found is None or found.version != version:
            raise PolicyError("a newer version was published meanwhile: read it and accept again")
        await tx.conn.execute(
            insert(consents).values(
                account_id=account.id,
                kind=AGREEMENT,
                version=found.version,
                granted=True,
                ip=origin.ip[:64],
                at_ms=now_ms(),
            )
        )
        await journal.record(
            tx.conn, J_ACCEPTED, ok=True, origin=origin, account=account, detail=f"version {found.version}"
        )


def requisites(core: Core) -> list[tuple[str, str]]:
    """The operator's requisites as printed on the public agreement page (T-27)."""
    s = core.settings
    rows = [
        ("Legal name", s.operator_legal_name),
        ("Registration number", s.operator_registration_number),
        ("Tax id", s.operator_tax_id),
        ("Address", s.operator_address),
        ("Bank details", s.operator_bank_details),
        ("Contact e-mail", s.operator_email),
    ]
    return [(k, v) for k, v in rows if v]

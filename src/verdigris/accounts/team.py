"""Team members: invitations, roles and removal (T-14)."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from verdigris.accounts import journal, policy
from verdigris.accounts.journal import Origin
from verdigris.accounts.links import INVITE, console_url, link_account, new_link, use_link
from verdigris.accounts.models import accounts, sessions
from verdigris.accounts.policy import PolicyError
from verdigris.accounts.records import (
    ACTIVE,
    CLOSED,
    INVITABLE_ROLES,
    INVITED,
    LICENSEE,
    Account,
    account_from_row,
    load_account,
)
from verdigris.accounts.registration import record_consents
from verdigris.accounts.service import (
    AccountError,
    email_taken,
    hash_password,
    insert_account,
    revoke_where,
    username_taken,
)
from verdigris.mail import send_mail
from verdigris.store.clock import now_ms
from verdigris.words import plural

if TYPE_CHECKING:
    from verdigris.core import Core


# --- team (T-14) ---------------------------------------------------------------------------------


async def team_members(core: Core, actor: Account) -> list[Account]:
    async with core.read() as conn:
        rows = (
            await conn.execute(
                select(accounts)
                .where(
                    ((accounts.c.id == actor.tenant) | (accounts.c.tenant_id == actor.tenant))
                    & (accounts.c.status != CLOSED)
                )
                .order_by(accounts.c.id)
            )
        ).all()
    return [account_from_row(r) for r in rows]


async def invite_member(core: Core, actor: Account, email: str, role: str, origin: Origin) -> Account:
    if not actor.can("team"):
        raise PolicyError("only the owner or an admin manages the team")
    if role not in INVITABLE_ROLES:
        raise PolicyError(f"role: one of {', '.join(INVITABLE_ROLES)}")
    address = policy.check_email(email)
    async with core.tx() as tx:
        if await email_taken(tx.conn, address):
            raise PolicyError("e-mail: an account with this address exists")
        member_id = await insert_account(
            tx.conn,
            username=f"invited-{secrets.token_hex(6)}",
            password=secrets.token_urlsafe(24),  # unusable until the member chooses one
            role=LICENSEE,
            email=address,
            status=INVITED,
            tenant_id=actor.tenant,
            team_role=role,
        )
        secret = await new_link(tx.conn, member_id, INVITE)
        member = await load_account(tx.conn, member_id)
        assert member is not None
        await journal.record(
            tx.conn,
            journal.MEMBER_INVITED,
            ok=True,
            origin=origin,
            account=actor,
            detail=f"{address} as {role}",
        )
    await send_mail(
        core,
        address,
        "You are invited to a Verdigris team",
        f"{actor.name or actor.username} invited you to their Verdigris team as {role}.\n\n"
        f"Choose your username and password here (the link works once, for 7 days):\n  {console_url(core, '/invite/' + secret)}\n",
    )
    return member


async def invitation(core: Core, secret: str) -> Account:
    async with core.read() as conn:
        _, member = await link_account(conn, secret, INVITE)
    return member


async def accept_invitation(
    core: Core, secret: str, username: str, password: str, accepted: bool, origin: Origin
) -> Account:
    checks = policy.Checks()
    if not accepted:
        checks.refuse(
            PolicyError(
                "accept the user agreement and the processing of personal data to join", field="accept"
            )
        )
    name = checks.run(policy.check_username, core.settings, username)
    async with core.read() as conn:  # every refusal at once; the transaction below checks again
        _, member = await link_account(conn, secret, INVITE)
        checks.run(policy.check_password, core.settings, password, username=name, email=member.email)
        if name and await username_taken(conn, name):
            checks.refuse(PolicyError(f"username: {name!r} is taken, choose another"))
    checks.done()
    async with core.tx() as tx:
        link_id, member = await link_account(tx.conn, secret, INVITE)
        policy.check_password(core.settings, password, username=name, email=member.email)
        if await username_taken(tx.conn, name):
            raise PolicyError(f"username: {name!r} is taken, choose another")
        await use_link(tx.conn, link_id)
        await tx.conn.execute(
            update(accounts)
            .where(accounts.c.id == member.id)
            .values(
                username=name,
                password_hash=hash_password(password),
                status=ACTIVE,
                email_verified_ms=now_ms(),
            )
        )
        await record_consents(tx.conn, core, member.id, origin, False)
        member.username = name
        await journal.record(tx.conn, journal.MEMBER_JOINED, ok=True, origin=origin, account=member)
    return member


async def _member_of(conn: AsyncConnection, actor: Account, member_id: int) -> Account:
    member = await load_account(conn, member_id)
    if member is None or member.tenant_id != actor.tenant or member.status == CLOSED:
        raise AccountError("no such team member")
    return member


async def change_member_role(core: Core, actor: Account, member_id: int, role: str, origin: Origin) -> None:
    if not actor.can("team"):
        raise PolicyError("only the owner or an admin manages the team")
    if role not in INVITABLE_ROLES:
        raise PolicyError(f"role: one of {', '.join(INVITABLE_ROLES)}")
    async with core.tx() as tx:
        member = await _member_of(tx.conn, actor, member_id)
        await tx.conn.execute(update(accounts).where(accounts.c.id == member.id).values(team_role=role))
        await journal.record(
            tx.conn,
            journal.MEMBER_ROLE_CHANGED,
            ok=True,
            origin=origin,
            account=actor,
            detail=f"{member.username}: {member.team_role} -> {role}",
        )


async def remove_member(core: Core, actor: Account, member_id: int, origin: Origin) -> None:
    """Remove a team member: its sessions end at once and its account is deleted."""
    if not actor.can("team"):
        raise PolicyError("only the owner or an admin manages the team")
    async with core.tx() as tx:
        member = await _member_of(tx.conn, actor, member_id)
        if member.id == actor.id:
            raise PolicyError("you cannot remove yourself; the owner can")
        ended = await revoke_where(tx.conn, sessions.c.account_id == member.id, "removed from team")
        await tx.conn.execute(delete(accounts).where(accounts.c.id == member.id))
        await journal.record(
            tx.conn,
            journal.MEMBER_REMOVED,
            ok=True,
            origin=origin,
            account=actor,
            detail=f"{member.username} ({member.email}); {plural(ended, 'session')} ended",
        )

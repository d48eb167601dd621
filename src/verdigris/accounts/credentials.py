"""Passwords and usernames: reset by mail, change with the current password (T-10, T-11)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select, update

from verdigris.accounts import journal, policy
from verdigris.accounts.journal import Origin
from verdigris.accounts.links import RESET, console_url, link_account, new_link, use_link
from verdigris.accounts.models import accounts, sessions
from verdigris.accounts.policy import PolicyError
from verdigris.accounts.records import (
    ACTIVE,
    Account,
    account_from_row,
)
from verdigris.accounts.service import hash_password, revoke_where, username_taken
from verdigris.accounts.sessions import LoginRefused, authenticate
from verdigris.mail import send_mail
from verdigris.store.clock import now_ms
from verdigris.words import plural

if TYPE_CHECKING:
    from verdigris.core import Core


# --- passwords and usernames (T-10, T-11) --------------------------------------------------------


async def request_password_reset(core: Core, email: str, origin: Origin) -> None:
    """Mail a reset link if an active account has this address; the caller's answer never tells."""
    address = email.strip()
    async with core.tx() as tx:
        row = (
            await tx.conn.execute(
                select(accounts).where(
                    (func.lower(accounts.c.email) == address.lower()) & (accounts.c.status == ACTIVE)
                )
            )
        ).first()
        account = account_from_row(row) if row else None
        await journal.record(
            tx.conn,
            journal.PASSWORD_RESET_REQUESTED,
            ok=account is not None,
            origin=origin,
            account=account,
            username=address,
            detail="" if account else "no active account with this address",
        )
        secret = await new_link(tx.conn, account.id, RESET) if account else None
    if account is not None and secret is not None:
        await send_mail(
            core,
            account.email,
            "Reset your Verdigris password",
            f"Hello {account.name or account.username},\n\n"
            f"someone (hopefully you) asked to reset the password of the account {account.username!r}.\n"
            f"Choose a new password here (the link works once, for one hour):\n  {console_url(core, '/reset/' + secret)}\n\n"
            "If it was not you, ignore this mail; your password stays as it is.\n",
        )


async def reset_password(core: Core, secret: str, password: str, origin: Origin) -> Account:
    async with core.tx() as tx:
        link_id, account = await link_account(tx.conn, secret, RESET)
        policy.check_password(core.settings, password, username=account.username, email=account.email)
        await use_link(tx.conn, link_id)
        await tx.conn.execute(
            update(accounts)
            .where(accounts.c.id == account.id)
            .values(
                password_hash=hash_password(password),
                email_verified_ms=func.coalesce(accounts.c.email_verified_ms, now_ms()),
            )
        )
        await revoke_where(tx.conn, sessions.c.account_id == account.id, "password reset")
        await journal.record(tx.conn, journal.PASSWORD_RESET, ok=True, origin=origin, account=account)
    return account


async def confirm_password(
    core: Core, account: Account, password: str, origin: Origin, field: str, where: str
) -> None:
    """A form's current password goes through the login's throttle and lockout (one counter)."""
    try:
        await authenticate(core, account.username, password, origin, where=where)
    except LoginRefused as exc:
        text = "wrong" if str(exc).startswith("Wrong") else str(exc)
        raise PolicyError(f"{field}: {text}", errors={field: text}) from None


async def set_password_hash(core: Core, account_id: int, password_hash: str) -> None:
    """Store a new password hash as is (no policy: for generated passwords)."""
    async with core.tx() as tx:
        await tx.conn.execute(
            update(accounts).where(accounts.c.id == account_id).values(password_hash=password_hash)
        )


async def change_password(
    core: Core, account: Account, current: str, new: str, keep_session: str, origin: Origin
) -> int:
    """Set a new password; every other session of the account ends. Returns how many ended."""
    await confirm_password(core, account, current, origin, "current password", "change password")
    policy.check_password(core.settings, new, username=account.username, email=account.email)
    async with core.tx() as tx:
        await tx.conn.execute(
            update(accounts).where(accounts.c.id == account.id).values(password_hash=hash_password(new))
        )
        ended = await revoke_where(
            tx.conn,
            (sessions.c.account_id == account.id) & (sessions.c.id != keep_session),
            "password changed",
        )
        await journal.record(
            tx.conn,
            journal.PASSWORD_CHANGED,
            ok=True,
            origin=origin,
            account=account,
            detail=f"{plural(ended, 'other session')} ended",
        )
    return ended


async def change_username(core: Core, account: Account, new: str, password: str, origin: Origin) -> str:
    await confirm_password(core, account, password, origin, "password", "change username")
    username = policy.check_username(core.settings, new)
    if username == account.username:
        return username
    async with core.tx() as tx:
        if await username_taken(tx.conn, username):
            raise PolicyError(f"username: {username!r} is taken, choose another")
        await tx.conn.execute(update(accounts).where(accounts.c.id == account.id).values(username=username))
        await journal.record(
            tx.conn,
            journal.USERNAME_CHANGED,
            ok=True,
            origin=origin,
            account=account,
            username=username,
            detail=f"was {account.username}",
        )
    return username

"""Accounts: creating them, finding them, their passwords' hashes and partner tokens.

The other account actions live by job: ``registration`` (sign-up, e-mail verification, consents),
``credentials`` (passwords and usernames), ``team`` (members and invitations), ``closing``
(instance tokens, compromise reports, closing and purging accounts), over ``links`` (the one-time
links they mail). Every state change happens in one function, in one transaction, and is written
to the auth-event journal (``accounts.journal``) in that same transaction; mails go out after the
commit.
"""

from __future__ import annotations

import secrets
import string
from typing import TYPE_CHECKING, Any

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from verdigris import safetext
from verdigris.accounts.models import accounts, partner_tokens, sessions
from verdigris.accounts.policy import PolicyError
from verdigris.accounts.records import (
    LICENSEE,
    OPERATOR,
    OWNER,
    Account,
    load_account,
)
from verdigris.store.clock import now_ms

if TYPE_CHECKING:
    from verdigris.core import Core


__all__ = ["OPERATOR", "LICENSEE", "OWNER", "AccountError", "PolicyError"]

log = structlog.get_logger("verdigris.accounts")
_hasher = PasswordHasher()  # argon2id with the library's recommended parameters


class AccountError(Exception):
    pass


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def generate_password(length: int = 16) -> str:
    """A random password with lowercase, uppercase and digits."""
    alphabet = string.ascii_letters + string.digits
    while True:
        value = "".join(secrets.choice(alphabet) for _ in range(length))
        if (
            any(c.islower() for c in value)
            and any(c.isupper() for c in value)
            and any(c.isdigit() for c in value)
        ):
            return value


def new_partner_token() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "gac." + "".join(secrets.choice(alphabet) for _ in range(42))


async def revoke_where(conn: AsyncConnection, condition: Any, why: str) -> int:
    """End every live session matching ``condition`` (rows stay, marked, so reuse is recognised)."""
    result = await conn.execute(
        update(sessions)
        .where(condition & sessions.c.revoked_ms.is_(None))
        .values(revoked_ms=now_ms(), revoked_why=why)
    )
    return int(result.rowcount or 0)


async def create_account(
    core: Core,
    *,
    username: str,
    password: str,
    role: str,
    email: str = "",
    name: str = "",
    phone: str = "",
    organisation: str = "",
) -> int:
    """An account made by the operator (or the demo): active and with its address taken as known."""
    if role not in (OPERATOR, LICENSEE):
        raise AccountError(f"unknown role {role!r}")
    async with core.tx() as tx:
        taken = await tx.conn.scalar(select(accounts.c.id).where(accounts.c.username == username))
        if taken is not None:
            raise AccountError(f"username {username!r} is taken")
        return await insert_account(
            tx.conn,
            username=username,
            password=password,
            role=role,
            email=email,
            name=name,
            phone=phone,
            organisation=organisation,
            email_verified_ms=now_ms(),
        )


async def insert_account(conn: AsyncConnection, *, username: str, password: str, **values: Any) -> int:
    """Insert an account row (``values``: further columns); returns its id."""
    result = await conn.execute(
        insert(accounts).values(
            username=username, password_hash=hash_password(password), created_ms=now_ms(), **values
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


async def issue_partner_token(core: Core, account_id: int, token: str | None = None) -> str:
    token = token or new_partner_token()
    async with core.tx() as tx:
        await tx.conn.execute(
            insert(partner_tokens).values(token=token, account_id=account_id, created_ms=now_ms())
        )
    return token


async def partner_account(core: Core, token: str) -> int | None:
    """The account a partner token belongs to, or None for an unknown token."""
    if not token or safetext.problem(token):
        return None  # such a token was never issued (and PostgreSQL cannot even look it up)
    async with core.read() as conn:
        account_id = await conn.scalar(
            select(partner_tokens.c.account_id).where(partner_tokens.c.token == token)
        )
    return None if account_id is None else int(account_id)


async def account_count(core: Core) -> int:
    async with core.read() as conn:
        rows = (await conn.execute(select(accounts.c.id).limit(1))).all()
    return len(rows)


async def get_by_username(core: Core, username: str) -> dict[str, Any] | None:
    async with core.read() as conn:
        row = (await conn.execute(select(accounts).where(accounts.c.username == username))).first()
    return dict(row._mapping) if row else None


async def get_account(core: Core, account_id: int) -> Account | None:
    async with core.read() as conn:
        return await load_account(conn, account_id)


async def email_taken(conn: AsyncConnection, email: str, but: int | None = None) -> bool:
    query = select(accounts.c.id).where(func.lower(accounts.c.email) == email.lower())
    if but is not None:
        query = query.where(accounts.c.id != but)
    return (await conn.scalar(query.limit(1))) is not None


async def username_taken(conn: AsyncConnection, username: str) -> bool:
    return (await conn.scalar(select(accounts.c.id).where(accounts.c.username == username))) is not None

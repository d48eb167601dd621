"""Account actions: create accounts, verify passwords, issue partner tokens."""

from __future__ import annotations

import secrets
import string
from typing import TYPE_CHECKING, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlalchemy import insert, select

from verdigris import safetext
from verdigris.accounts.models import accounts, partner_tokens
from verdigris.store.clock import now_ms

if TYPE_CHECKING:
    from verdigris.core import Core

OPERATOR = "operator"
LICENSEE = "licensee"
_hasher = PasswordHasher()  # argon2id with the library's recommended parameters


class AccountError(Exception):
    pass


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, InvalidHashError):
        return False


def generate_password(length: int = 16) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def new_partner_token() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "gac." + "".join(secrets.choice(alphabet) for _ in range(42))


async def create_account(
    core: Core, *, username: str, password: str, role: str, email: str = "", name: str = ""
) -> int:
    if role not in (OPERATOR, LICENSEE):
        raise AccountError(f"unknown role {role!r}")
    async with core.tx() as tx:
        taken = await tx.conn.scalar(select(accounts.c.id).where(accounts.c.username == username))
        if taken is not None:
            raise AccountError(f"username {username!r} is taken")
        result = await tx.conn.execute(
            insert(accounts).values(
                username=username,
                email=email,
                name=name,
                role=role,
                password_hash=hash_password(password),
                created_ms=now_ms(),
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

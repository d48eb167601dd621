"""One-time links mailed to people: e-mail verification, password reset, invitations."""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from verdigris.accounts.models import account_links
from verdigris.accounts.records import (
    CLOSED,
    Account,
    load_account,
)
from verdigris.accounts.service import AccountError
from verdigris.store.clock import now_ms

if TYPE_CHECKING:
    from verdigris.core import Core


# --- one-time links (e-mail verification, password reset, invitations) -------------------------

VERIFY, RESET, INVITE = "verify", "reset", "invite"
LINK_TTL_MS = {VERIFY: 7 * 86_400_000, RESET: 3_600_000, INVITE: 7 * 86_400_000}


def console_url(core: Core, path: str = "") -> str:
    return f"{core.public_url}/console{path}"


async def new_link(conn: AsyncConnection, account_id: int, purpose: str) -> str:
    secret = secrets.token_urlsafe(32)
    at = now_ms()
    await conn.execute(
        insert(account_links).values(
            id=hashlib.sha256(secret.encode()).hexdigest(),
            account_id=account_id,
            purpose=purpose,
            created_ms=at,
            expires_ms=at + LINK_TTL_MS[purpose],
        )
    )
    return secret


async def link_account(conn: AsyncConnection, secret: str, purpose: str) -> tuple[str, Account]:
    """The account a still-valid link belongs to; raises AccountError otherwise."""
    link_id = hashlib.sha256(secret.encode()).hexdigest()
    row = (
        await conn.execute(
            select(account_links).where(
                (account_links.c.id == link_id) & (account_links.c.purpose == purpose)
            )
        )
    ).first()
    if row is None or row.used_ms is not None or row.expires_ms < now_ms():
        raise AccountError("This link is invalid, used or expired.")
    account = await load_account(conn, int(row.account_id))
    if account is None or account.status == CLOSED:
        raise AccountError("This link is invalid, used or expired.")
    return link_id, account


async def use_link(conn: AsyncConnection, link_id: str) -> None:
    await conn.execute(update(account_links).where(account_links.c.id == link_id).values(used_ms=now_ms()))

"""The auth-event journal (T-13): every login, failed login, logout and security action.

Each entry has the time, the address and the user agent of the request, and belongs to the account
(and its team) so the user sees it; the operator sees all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from verdigris.accounts.models import auth_events
from verdigris.accounts.records import Account
from verdigris.store.clock import now_ms

if TYPE_CHECKING:
    from verdigris.core import Core

# Kinds of entries (the journal's vocabulary, shown to users).
LOGIN_OK = "login_ok"
LOGIN_FAILED = "login_failed"
LOGIN_THROTTLED = "login_throttled"
LOGOUT = "logout"
LOGOUT_EVERYWHERE = "logout_everywhere"
SESSION_REVOKED = "session_revoked"
SESSION_REJECTED = "session_rejected"
CSRF_REJECTED = "csrf_rejected"
FOREIGN_INSTANCE = "foreign_instance"
# Another tenant's (or no) team member, contact, campaign, invoice or transfer was asked for.
FOREIGN_OBJECT = "foreign_object"
FORBIDDEN = "forbidden"
REGISTERED = "registered"
EMAIL_VERIFIED = "email_verified"
PASSWORD_CHANGED = "password_changed"
PASSWORD_RESET_REQUESTED = "password_reset_requested"
PASSWORD_RESET = "password_reset"
USERNAME_CHANGED = "username_changed"
TOKEN_REVEALED = "token_revealed"
TOKEN_ROTATED = "token_rotated"
COMPROMISE_REPORTED = "compromise_reported"
MEMBER_INVITED = "member_invited"
MEMBER_JOINED = "member_joined"
MEMBER_ROLE_CHANGED = "member_role_changed"
MEMBER_REMOVED = "member_removed"
CONSENT_CHANGED = "consent_changed"
ACCOUNT_CLOSED = "account_closed"
ANNOUNCEMENT_SENT = "announcement_sent"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a request came from (recorded with every journal entry)."""

    ip: str = ""
    user_agent: str = ""


SYSTEM = Origin("", "verdigris")


async def record(
    conn: AsyncConnection,
    kind: str,
    *,
    ok: bool,
    origin: Origin,
    account: Account | None = None,
    username: str = "",
    detail: str = "",
    tenant_id: int | None = None,
) -> None:
    """Add an entry; ``tenant_id`` places it in a team's journal when no account acted (the API)."""
    await conn.execute(
        insert(auth_events).values(
            account_id=account.id if account else None,
            tenant_id=account.tenant if account else tenant_id,
            username=(username or (account.username if account else ""))[:254],
            kind=kind,
            ok=ok,
            ip=origin.ip[:64],
            user_agent=origin.user_agent[:300],
            detail=detail[:400],
            at_ms=now_ms(),
        )
    )


async def note(
    core: Core,
    kind: str,
    *,
    ok: bool,
    origin: Origin,
    account: Account | None = None,
    username: str = "",
    detail: str = "",
) -> None:
    """:func:`record` in a transaction of its own (for refusals, where nothing else changes)."""
    async with core.tx() as tx:
        await record(tx.conn, kind, ok=ok, origin=origin, account=account, username=username, detail=detail)


async def entries(
    conn: AsyncConnection, account: Account | None, *, team: bool = False, limit: int = 200
) -> list[dict[str, Any]]:
    """Newest first: the account's own entries, its team's (``team``), or all (``account`` None)."""
    query = select(auth_events).order_by(auth_events.c.id.desc()).limit(limit)
    if account is not None:
        if team:
            query = query.where(
                or_(auth_events.c.tenant_id == account.tenant, auth_events.c.account_id == account.id)
            )
        else:
            query = query.where(auth_events.c.account_id == account.id)
    rows = (await conn.execute(query)).all()
    return [dict(r._mapping) for r in rows]

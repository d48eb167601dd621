"""Console sessions and logging in (T-12, T-24).

The browser holds a random secret in an HttpOnly cookie; the database holds only its SHA-256,
the CSRF token bound to the session, and when and from where it was used. Revoked sessions stay
as rows (marked), so a revoked cookie presented again is recognised and recorded.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from verdigris.accounts import journal
from verdigris.accounts.journal import Origin
from verdigris.accounts.models import accounts, auth_events, sessions
from verdigris.accounts.records import ACTIVE, CLOSED, INVITED, Account, account_from_row, load_account
from verdigris.accounts.service import hash_password, revoke_where, verify_password
from verdigris.compliance import moderation
from verdigris.store.clock import now_ms
from verdigris.words import plural

if TYPE_CHECKING:
    from verdigris.core import Core

SEEN_EVERY_MS = 60_000
_DUMMY_HASH = hash_password("verdigris-timing-equaliser")


class LoginRefused(Exception):
    """The login did not succeed; the message is safe to show. ``blocked``: by the operator."""

    def __init__(self, message: str, *, blocked: bool = False) -> None:
        super().__init__(message)
        self.blocked = blocked


@dataclass(slots=True)
class Session:
    id: str
    account: Account
    csrf: str
    created_ms: int
    last_seen_ms: int
    ip: str
    user_agent: str


def session_id(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def open_session(conn: AsyncConnection, core: Core, account: Account, origin: Origin) -> str:
    """Insert a session row; returns the cookie secret."""
    secret = secrets.token_urlsafe(32)
    at = now_ms()
    await conn.execute(
        insert(sessions).values(
            id=session_id(secret),
            account_id=account.id,
            csrf=secrets.token_urlsafe(24),
            ip=origin.ip[:64],
            user_agent=origin.user_agent[:300],
            created_ms=at,
            last_seen_ms=at,
            expires_ms=at + core.settings.session_hours * 3_600_000,
        )
    )
    return secret


async def _failures(
    conn: AsyncConnection, core: Core, identifier: str, account: Account | None, ip: str
) -> tuple[int, int]:
    """Recent failed logins for this username or e-mail (or its account, whichever was typed), and from ``ip``."""
    since = now_ms() - core.settings.login_window_seconds * 1000
    who = auth_events.c.username == identifier
    name_since = since
    if account is not None:
        who = who | (auth_events.c.account_id == account.id)
        # A completed password reset proves the owner is back: failures before it no longer count.
        reset = await conn.scalar(
            select(func.max(auth_events.c.at_ms)).where(
                (auth_events.c.kind == journal.PASSWORD_RESET)
                & (auth_events.c.account_id == account.id)
                & auth_events.c.ok
            )
        )
        if reset is not None:
            name_since = max(since, int(reset) + 1)
    by_name = await conn.scalar(
        select(func.count())
        .select_from(auth_events)
        .where((auth_events.c.kind == journal.LOGIN_FAILED) & who & (auth_events.c.at_ms >= name_since))
    )
    by_ip = await conn.scalar(
        select(func.count())
        .select_from(auth_events)
        .where(
            (auth_events.c.kind == journal.LOGIN_FAILED)
            & (auth_events.c.ip == ip)
            & (auth_events.c.at_ms >= since)
        )
    )
    return int(by_name or 0), int(by_ip or 0)


async def _serialise(conn: AsyncConnection, identifier: str) -> None:
    """On PostgreSQL, checks of one username wait for each other (a transaction-scoped advisory
    lock), so concurrent guesses all see the failures recorded before them. SQLite needs nothing:
    write transactions begin IMMEDIATE and run one at a time."""
    if conn.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(b"login:" + identifier.encode()).digest()[:8], "big", signed=True)
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


async def authenticate(
    core: Core,
    identifier: str,
    password: str,
    origin: Origin,
    *,
    where: str = "",
    known_hash: str | None = None,
) -> Account:
    """The one password check of the platform: console login, HTTP Basic on ``/api/v1``, and the
    current password of the change-password and change-username forms.

    Every failure is journalled. After ``login_max_failures`` failures for a username (or four
    times as many from one address) within ``login_window_seconds``, attempts are refused
    without looking at the password until the window has passed. Closed, unverified and
    operator-blocked accounts are refused too. ``known_hash``: the password was checked against
    this hash a moment ago (a cache of the caller); if the account still has it, argon2 is skipped.
    """
    ident = identifier.strip().lower()[:254]
    refusal: str | None = None
    detail = ""
    blocked = False
    async with core.tx() as tx:
        await _serialise(tx.conn, ident)
        row = (
            await tx.conn.execute(
                select(accounts).where(
                    or_(accounts.c.username == ident, func.lower(accounts.c.email) == ident)
                )
            )
        ).first()
        account = account_from_row(row) if row else None
        by_name, by_ip = await _failures(tx.conn, core, ident, account, origin.ip)
        limit = core.settings.login_max_failures
        if by_name >= limit or (origin.ip and by_ip >= limit * 4):
            await journal.record(
                tx.conn, journal.LOGIN_THROTTLED, ok=False, origin=origin, account=account, username=ident
            )
            minutes = max(1, core.settings.login_window_seconds // 60)
            refusal = (
                f"Too many failed attempts. Try again in {plural(minutes, 'minute')}, "
                "or reset your password (Forgot your password?): a completed reset lifts this lock."
            )
        elif account is None:
            verify_password(_DUMMY_HASH, password)  # same work as for a known user
            refusal = "Wrong username or password."
            detail = "unknown user"
        elif not (known_hash is not None and known_hash == account.password_hash) and not verify_password(
            account.password_hash, password
        ):
            refusal = "Wrong username or password."
            detail = "wrong password"
        elif account.status == CLOSED:
            refusal = "This account is closed."
            detail = "account closed"
        elif account.status == INVITED or account.status != ACTIVE:
            refusal = "This account is not active yet."
            detail = "account not active"
        elif account.email_verified_ms is None:
            refusal = "Confirm your e-mail address first: open the link in the mail we sent you."
            detail = "e-mail not verified"
        elif (measure := await moderation.measure_in_store(tx.conn, account)) and measure.locks_out:
            refusal = measure.describe()
            detail = f"account {measure.kind}"
            blocked = True
        if refusal is None:
            assert account is not None
            return account
        if not refusal.startswith("Too many"):
            await journal.record(
                tx.conn,
                journal.LOGIN_FAILED,
                ok=False,
                origin=origin,
                account=account,
                username=ident,
                detail=f"{detail} ({where})" if where else detail,
            )
    raise LoginRefused(refusal, blocked=blocked)


async def login(core: Core, identifier: str, password: str, origin: Origin) -> tuple[str, Account]:
    """Check the credentials (``authenticate``) and open a session; returns (cookie secret, account)."""
    account = await authenticate(core, identifier, password, origin)
    async with core.tx() as tx:
        secret = await open_session(tx.conn, core, account, origin)
        await journal.record(tx.conn, journal.LOGIN_OK, ok=True, origin=origin, account=account)
    return secret, account


async def resolve(core: Core, secret: str, origin: Origin) -> Session | None:
    """The live session behind a cookie, or None. A revoked or expired one is journalled."""
    if not secret or len(secret) > 200:
        return None
    sid = session_id(secret)
    async with core.read() as conn:
        row = (await conn.execute(select(sessions).where(sessions.c.id == sid))).first()
        account = await load_account(conn, int(row.account_id)) if row else None
    if row is None or account is None:
        return None
    at = now_ms()
    problem = ""
    if row.revoked_ms is not None:
        problem = f"session ended ({row.revoked_why or 'revoked'})"
    elif row.expires_ms <= at:
        problem = "session expired"
    elif account.status != ACTIVE:
        problem = f"account {account.status}"
    elif (measure := core.moderation.of(account)) and measure.locks_out:
        problem = f"account {measure.kind}"
    if problem:
        await journal.note(
            core, journal.SESSION_REJECTED, ok=False, origin=origin, account=account, detail=problem
        )
        return None
    if at - int(row.last_seen_ms) > SEEN_EVERY_MS:
        async with core.tx() as tx:
            await tx.conn.execute(
                update(sessions).where(sessions.c.id == sid).values(last_seen_ms=at, ip=origin.ip[:64])
            )
    return Session(sid, account, row.csrf, int(row.created_ms), int(row.last_seen_ms), row.ip, row.user_agent)


async def logout(core: Core, session: Session, origin: Origin) -> None:
    async with core.tx() as tx:
        await revoke_where(tx.conn, sessions.c.id == session.id, "logout")
        await journal.record(tx.conn, journal.LOGOUT, ok=True, origin=origin, account=session.account)


async def logout_everywhere(core: Core, session: Session, origin: Origin) -> int:
    async with core.tx() as tx:
        count = await revoke_where(tx.conn, sessions.c.account_id == session.account.id, "logout everywhere")
        await journal.record(
            tx.conn,
            journal.LOGOUT_EVERYWHERE,
            ok=True,
            origin=origin,
            account=session.account,
            detail=f"{plural(count, 'session')} ended",
        )
    return count


async def revoke_one(core: Core, session: Session, target_id: str, origin: Origin) -> bool:
    """End one of the account's own sessions (from the sessions list)."""
    async with core.tx() as tx:
        count = await revoke_where(
            tx.conn,
            (sessions.c.id == target_id) & (sessions.c.account_id == session.account.id),
            "ended by user",
        )
        if count:
            await journal.record(
                tx.conn,
                journal.SESSION_REVOKED,
                ok=True,
                origin=origin,
                account=session.account,
                detail=target_id[:8],
            )
    return bool(count)


async def active_sessions(core: Core, account: Account) -> list[dict[str, Any]]:
    async with core.read() as conn:
        rows = (
            await conn.execute(
                select(sessions)
                .where(
                    (sessions.c.account_id == account.id)
                    & sessions.c.revoked_ms.is_(None)
                    & (sessions.c.expires_ms > now_ms())
                )
                .order_by(sessions.c.last_seen_ms.desc())
            )
        ).all()
    return [dict(r._mapping) for r in rows]

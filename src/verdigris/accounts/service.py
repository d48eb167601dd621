"""Account actions: create accounts, registration and e-mail links, passwords and usernames,
team members, compromise reports and closing an account (issue 5, T-09..T-19).

Every state change happens in one function here, in one transaction, and is written to the
auth-event journal (``accounts.journal``) in that same transaction. Mails go out after the commit.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from verdigris import safetext
from verdigris.accounts import journal, policy
from verdigris.accounts.journal import Origin
from verdigris.accounts.models import account_links, accounts, consents, partner_tokens, sessions
from verdigris.accounts.policy import PolicyError
from verdigris.accounts.records import (
    ACTIVE,
    CLOSED,
    INVITABLE_ROLES,
    INVITED,
    LICENSEE,
    OPERATOR,
    OWNER,
    Account,
    account_from_row,
    load_account,
)
from verdigris.compliance import agreements, erasure
from verdigris.instances.models import instances
from verdigris.instances.service import replace_token
from verdigris.mail import send_mail, send_sms
from verdigris.store.clock import now_ms
from verdigris.words import plural

if TYPE_CHECKING:
    from verdigris.core import Core, Tx
    from verdigris.instances.service import InstanceRecord

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
        return await _insert_account(
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


async def _insert_account(conn: AsyncConnection, *, username: str, password: str, **values: Any) -> int:
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


# --- one-time links (e-mail verification, password reset, invitations) -------------------------

VERIFY, RESET, INVITE = "verify", "reset", "invite"
LINK_TTL_MS = {VERIFY: 7 * 86_400_000, RESET: 3_600_000, INVITE: 7 * 86_400_000}


def console_url(core: Core, path: str = "") -> str:
    return f"{core.public_url}/console{path}"


async def _new_link(conn: AsyncConnection, account_id: int, purpose: str) -> str:
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


async def _link_account(conn: AsyncConnection, secret: str, purpose: str) -> tuple[str, Account]:
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


async def _use_link(conn: AsyncConnection, link_id: str) -> None:
    await conn.execute(update(account_links).where(account_links.c.id == link_id).values(used_ms=now_ms()))


# --- registration (T-09, T-10, T-19) -------------------------------------------------------------


@dataclass
class Registration:
    name: str
    email: str
    phone: str
    organisation: str
    username: str
    accept_agreement: bool
    accept_privacy: bool
    marketing: bool


async def _email_taken(conn: AsyncConnection, email: str, but: int | None = None) -> bool:
    query = select(accounts.c.id).where(func.lower(accounts.c.email) == email.lower())
    if but is not None:
        query = query.where(accounts.c.id != but)
    return (await conn.scalar(query.limit(1))) is not None


async def _username_taken(conn: AsyncConnection, username: str) -> bool:
    return (await conn.scalar(select(accounts.c.id).where(accounts.c.username == username))) is not None


async def _record_consents(
    conn: AsyncConnection, core: Core, account_id: int, origin: Origin, marketing: bool
) -> None:
    at = now_ms()
    rows = [
        ("agreement", await agreements.current_label(conn, core), True),
        ("personal_data", core.settings.privacy_version, True),
        ("marketing", core.settings.privacy_version, marketing),
    ]
    for kind, version, granted in rows:
        await conn.execute(
            insert(consents).values(
                account_id=account_id,
                kind=kind,
                version=version,
                granted=granted,
                ip=origin.ip[:64],
                at_ms=at,
            )
        )


async def register(core: Core, form: Registration, origin: Origin) -> Account:
    """Create a licensee account and send its credentials and a verification link by e-mail.

    The password is generated (and satisfies the policy); the user may change it after logging in.
    """
    settings = core.settings
    checks = policy.Checks()
    name = checks.run(policy.check_text, "name", form.name, required=True)
    email = checks.run(policy.check_email, form.email)
    phone = checks.run(policy.check_phone, form.phone)
    organisation = checks.run(policy.check_text, "organisation", form.organisation)
    username = checks.run(policy.check_username, settings, form.username)
    if not form.accept_agreement:
        checks.refuse(PolicyError("accept the user agreement to register", field="accept_agreement"))
    if not form.accept_privacy:
        checks.refuse(
            PolicyError(
                "consent to the processing of personal data is needed to register", field="accept_privacy"
            )
        )
    async with core.read() as conn:  # every refusal at once; the transaction below checks again
        if username and await _username_taken(conn, username):
            checks.refuse(PolicyError(f"username: {username!r} is taken, choose another"))
        if email and await _email_taken(conn, email):
            checks.refuse(
                PolicyError("e-mail: an account with this address exists (reset its password instead)")
            )
    checks.done()
    password = generate_password(max(16, settings.password_min_length))
    async with core.tx() as tx:
        if await _username_taken(tx.conn, username):
            raise PolicyError(f"username: {username!r} is taken, choose another")
        if await _email_taken(tx.conn, email):
            raise PolicyError("e-mail: an account with this address exists (reset its password instead)")
        account_id = await _insert_account(
            tx.conn,
            username=username,
            password=password,
            role=LICENSEE,
            email=email,
            name=name,
            phone=phone,
            organisation=organisation,
        )
        await _record_consents(tx.conn, core, account_id, origin, form.marketing)
        verify = await _new_link(tx.conn, account_id, VERIFY)
        account = await load_account(tx.conn, account_id)
        assert account is not None
        await journal.record(tx.conn, journal.REGISTERED, ok=True, origin=origin, account=account)
    await send_mail(
        core,
        email,
        "Your Verdigris account",
        f"Hello {name},\n\n"
        "your Verdigris account is ready.\n\n"
        f"  username: {username}\n"
        f"  password: {password}\n\n"
        f"First confirm your e-mail address by opening this link:\n  {console_url(core, '/verify/' + verify)}\n\n"
        f"Then log in at {console_url(core, '/login')}\n"
        "You can change your username and password in the account settings.\n",
    )
    if phone:
        await send_sms(
            core, phone, f"Verdigris: your username is {username}. The password was sent to {email}."
        )
    return account


async def verify_email(core: Core, secret: str, origin: Origin) -> Account:
    async with core.tx() as tx:
        link_id, account = await _link_account(tx.conn, secret, VERIFY)
        await _use_link(tx.conn, link_id)
        await tx.conn.execute(
            update(accounts).where(accounts.c.id == account.id).values(email_verified_ms=now_ms())
        )
        await journal.record(tx.conn, journal.EMAIL_VERIFIED, ok=True, origin=origin, account=account)
    return account


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
        secret = await _new_link(tx.conn, account.id, RESET) if account else None
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
        link_id, account = await _link_account(tx.conn, secret, RESET)
        policy.check_password(core.settings, password, username=account.username, email=account.email)
        await _use_link(tx.conn, link_id)
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


async def _confirm_password(
    core: Core, account: Account, password: str, origin: Origin, field: str, where: str
) -> None:
    """A form's current password goes through the login's throttle and lockout (one counter)."""
    from verdigris.accounts.sessions import LoginRefused, authenticate

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
    await _confirm_password(core, account, current, origin, "current password", "change password")
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
    await _confirm_password(core, account, password, origin, "password", "change username")
    username = policy.check_username(core.settings, new)
    if username == account.username:
        return username
    async with core.tx() as tx:
        if await _username_taken(tx.conn, username):
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


async def consents_of(core: Core, account: Account) -> list[dict[str, Any]]:
    async with core.read() as conn:
        rows = (
            await conn.execute(
                select(consents).where(consents.c.account_id == account.id).order_by(consents.c.id.desc())
            )
        ).all()
    return [dict(r._mapping) for r in rows]


async def set_marketing_consent(core: Core, account: Account, granted: bool, origin: Origin) -> None:
    async with core.tx() as tx:
        await tx.conn.execute(
            insert(consents).values(
                account_id=account.id,
                kind="marketing",
                version=core.settings.privacy_version,
                granted=granted,
                ip=origin.ip[:64],
                at_ms=now_ms(),
            )
        )
        await journal.record(
            tx.conn,
            journal.CONSENT_CHANGED,
            ok=True,
            origin=origin,
            account=account,
            detail=f"marketing {'granted' if granted else 'withdrawn'}",
        )


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
        if await _email_taken(tx.conn, address):
            raise PolicyError("e-mail: an account with this address exists")
        member_id = await _insert_account(
            tx.conn,
            username=f"invited-{secrets.token_hex(6)}",
            password=secrets.token_urlsafe(24),  # unusable until the member chooses one
            role=LICENSEE,
            email=address,
            status=INVITED,
            tenant_id=actor.tenant,
            team_role=role,
        )
        secret = await _new_link(tx.conn, member_id, INVITE)
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
        _, member = await _link_account(conn, secret, INVITE)
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
        _, member = await _link_account(conn, secret, INVITE)
        checks.run(policy.check_password, core.settings, password, username=name, email=member.email)
        if name and await _username_taken(conn, name):
            checks.refuse(PolicyError(f"username: {name!r} is taken, choose another"))
    checks.done()
    async with core.tx() as tx:
        link_id, member = await _link_account(tx.conn, secret, INVITE)
        policy.check_password(core.settings, password, username=name, email=member.email)
        if await _username_taken(tx.conn, name):
            raise PolicyError(f"username: {name!r} is taken, choose another")
        await _use_link(tx.conn, link_id)
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
        await _record_consents(tx.conn, core, member.id, origin, False)
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


# --- instance tokens, compromise, closing (T-15, T-18) --------------------------------------------


async def _rotate_tokens(tx: Tx, recs: list[InstanceRecord]) -> None:
    for rec in recs:
        await replace_token(tx, rec)


async def tenant_instances(core: Core, tenant_id: int) -> list[InstanceRecord]:
    """The tenant's instances as the cache holds them (so token changes reach the hot path)."""
    async with core.read() as conn:
        ids = [
            int(r[0])
            for r in await conn.execute(
                select(instances.c.id).where(
                    (instances.c.account_id == tenant_id) & instances.c.deleted_ms.is_(None)
                )
            )
        ]
    recs = [await core.instances.get(i) for i in ids]
    return [r for r in recs if r is not None]


async def rotate_instance_token(
    core: Core, actor: Account | None, rec: InstanceRecord, origin: Origin
) -> str:
    """Replace an instance's API token and journal it (``actor`` None: through the API itself)."""
    async with core.tx() as tx:
        await _rotate_tokens(tx, [rec])
        await journal.record(
            tx.conn,
            journal.TOKEN_ROTATED,
            ok=True,
            origin=origin,
            account=actor,
            username="" if actor else "(API)",
            tenant_id=rec.account_id,
            detail=f"instance {rec.id}" + ("" if actor else " via updateApiToken"),
        )
    return rec.token


async def report_compromise(core: Core, account: Account, origin: Origin) -> tuple[int, int]:
    """Credentials leaked: end every session of the account and replace every API token it could see.

    Returns (sessions ended, tokens replaced). Whatever happens with the old credentials after this
    moment is not the user's doing (T-15); the moment is in the journal.
    """
    recs = await tenant_instances(core, account.tenant) if account.can("instance.token") else []
    async with core.tx() as tx:
        ended = await revoke_where(tx.conn, sessions.c.account_id == account.id, "compromise reported")
        await _rotate_tokens(tx, recs)
        await tx.conn.execute(delete(partner_tokens).where(partner_tokens.c.account_id == account.id))
        await journal.record(
            tx.conn,
            journal.COMPROMISE_REPORTED,
            ok=True,
            origin=origin,
            account=account,
            detail=f"{plural(ended, 'session')} ended, {plural(len(recs), 'API token')} replaced",
        )
    return ended, len(recs)


async def close_account(core: Core, account: Account, password: str, confirm: str, origin: Origin) -> int:
    """Close the owner's account (T-18): blocked at once, data deleted after the grace period.

    Returns the moment (ms) after which the data is deleted.
    """
    if not account.can("close"):
        raise PolicyError("only the owner can close the account")
    if confirm.strip().lower() != account.username:
        raise PolicyError("type your username to confirm", field="confirm")
    if not verify_password(account.password_hash, password):
        raise PolicyError("password: wrong")
    at = now_ms()
    delete_after = at + core.settings.account_delete_grace_seconds * 1000
    recs = await tenant_instances(core, account.tenant)
    team = (accounts.c.id == account.id) | (accounts.c.tenant_id == account.id)
    async with core.tx() as tx:
        await tx.conn.execute(
            update(accounts).where(team).values(status=CLOSED, closed_ms=at, delete_after_ms=delete_after)
        )
        member_ids = select(accounts.c.id).where(team)
        await revoke_where(tx.conn, sessions.c.account_id.in_(member_ids), "account closed")
        await _rotate_tokens(tx, recs)  # the API refuses the old tokens from now on
        await tx.conn.execute(delete(partner_tokens).where(partner_tokens.c.account_id == account.id))
        await journal.record(
            tx.conn,
            journal.ACCOUNT_CLOSED,
            ok=True,
            origin=origin,
            account=account,
            detail=f"data deleted after {delete_after}",
        )
    schedule_purge(core, delete_after)
    return delete_after


async def purge_closed(core: Core) -> int:
    """Delete every closed account whose grace period is over, with its team, instances and data."""
    at = now_ms()
    async with core.read() as conn:
        due = [
            int(r[0])
            for r in await conn.execute(
                select(accounts.c.id).where(
                    (accounts.c.status == CLOSED)
                    & accounts.c.tenant_id.is_(None)
                    & (accounts.c.delete_after_ms <= at)
                )
            )
        ]
    for owner_id in due:
        done = await erasure.erase(core, owner_id)
        log.info("closed account deleted", account_id=owner_id, instances=done.instances, rows=done.rows)
    return len(due)


# Ended sessions and used links are kept this long (so a replayed cookie is still recognised).
KEEP_ENDED_MS = 30 * 86_400_000
HOUSEKEEPING_EVERY_MS = 3_600_000


async def purge_stale(core: Core) -> int:
    """Drop session rows and e-mail links that ended more than KEEP_ENDED_MS ago."""
    cutoff = now_ms() - KEEP_ENDED_MS
    async with core.tx() as tx:
        gone = await tx.conn.execute(
            delete(sessions).where((sessions.c.expires_ms < cutoff) | (sessions.c.revoked_ms < cutoff))
        )
        links = await tx.conn.execute(delete(account_links).where(account_links.c.expires_ms < cutoff))
    return int(gone.rowcount or 0) + int(links.rowcount or 0)


def schedule_purge(core: Core, due_ms: int) -> None:
    async def run() -> None:
        await purge_and_plan(core)

    core.timers.schedule("accounts-purge", due_ms, run)


async def purge_and_plan(core: Core) -> None:
    """Delete closed accounts whose grace period is over and stale sessions; plan the next run.

    Runs on start, then hourly or when the next closed account falls due, whichever is first.
    """
    await purge_closed(core)
    await purge_stale(core)
    async with core.read() as conn:
        next_due = await conn.scalar(
            select(func.min(accounts.c.delete_after_ms)).where(
                (accounts.c.status == CLOSED) & accounts.c.tenant_id.is_(None)
            )
        )
    hourly = now_ms() + HOUSEKEEPING_EVERY_MS
    schedule_purge(core, min(hourly, int(next_due)) if next_due is not None else hourly)

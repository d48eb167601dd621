"""Sign-up, e-mail verification and the consents given at sign-up and later (T-09, T-10, T-19)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from verdigris.accounts import journal, policy
from verdigris.accounts.journal import Origin
from verdigris.accounts.links import VERIFY, console_url, link_account, new_link, use_link
from verdigris.accounts.models import accounts, consents
from verdigris.accounts.policy import PolicyError
from verdigris.accounts.records import (
    LICENSEE,
    Account,
    load_account,
)
from verdigris.accounts.service import email_taken, generate_password, insert_account, username_taken
from verdigris.compliance import agreements
from verdigris.mail import send_mail, send_sms
from verdigris.store.clock import now_ms

if TYPE_CHECKING:
    from verdigris.core import Core


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


async def record_consents(
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
        if username and await username_taken(conn, username):
            checks.refuse(PolicyError(f"username: {username!r} is taken, choose another"))
        if email and await email_taken(conn, email):
            checks.refuse(
                PolicyError("e-mail: an account with this address exists (reset its password instead)")
            )
    checks.done()
    password = generate_password(max(16, settings.password_min_length))
    async with core.tx() as tx:
        if await username_taken(tx.conn, username):
            raise PolicyError(f"username: {username!r} is taken, choose another")
        if await email_taken(tx.conn, email):
            raise PolicyError("e-mail: an account with this address exists (reset its password instead)")
        account_id = await insert_account(
            tx.conn,
            username=username,
            password=password,
            role=LICENSEE,
            email=email,
            name=name,
            phone=phone,
            organisation=organisation,
        )
        await record_consents(tx.conn, core, account_id, origin, form.marketing)
        verify = await new_link(tx.conn, account_id, VERIFY)
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
        link_id, account = await link_account(tx.conn, secret, VERIFY)
        await use_link(tx.conn, link_id)
        await tx.conn.execute(
            update(accounts).where(accounts.c.id == account.id).values(email_verified_ms=now_ms())
        )
        await journal.record(tx.conn, journal.EMAIL_VERIFIED, ok=True, origin=origin, account=account)
    return account


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

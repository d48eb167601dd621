"""Mail from the operator to the users (T-20): service announcements reach every active user;
advertising (``marketing``) reaches only users whose latest recorded marketing consent is "granted",
and every such mail carries an unsubscribe link that needs no login.

Sending is durable: an announcement and one delivery row per recipient are written in one
transaction; the deliveries are then mailed in small batches on the timer heap (a restart resumes
them). A crash between mailing and marking can repeat that one mail (at least once, never lost).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import func, insert, select, update

from verdigris import mail, safetext
from verdigris.accounts import journal
from verdigris.accounts.models import accounts, announcement_deliveries, announcements, consents
from verdigris.accounts.policy import Checks, PolicyError, check_email
from verdigris.accounts.records import ACTIVE, LICENSEE, Account
from verdigris.errors import ServiceError
from verdigris.instances.service import workspace_value
from verdigris.store.clock import now_ms
from verdigris.words import plural

if TYPE_CHECKING:
    from verdigris.core import Core

log = structlog.get_logger("verdigris.announcements")

SERVICE, MARKETING = "service", "marketing"
BATCH = 20


class AnnouncementError(ServiceError):
    pass


# --- who receives what ---------------------------------------------------------------------------


def _latest_marketing() -> Any:
    """Per account, the id of its newest marketing consent record."""
    return (
        select(consents.c.account_id, func.max(consents.c.id).label("last_id"))
        .where(consents.c.kind == MARKETING)
        .group_by(consents.c.account_id)
        .subquery()
    )


def _recipients_query(kind: str) -> Any:
    query = select(accounts.c.id, accounts.c.email).where(
        (accounts.c.status == ACTIVE)
        & (accounts.c.role == LICENSEE)
        & accounts.c.email_verified_ms.is_not(None)
        & (accounts.c.email != "")
    )
    if kind == MARKETING:
        latest = _latest_marketing()
        query = (
            query.join(latest, latest.c.account_id == accounts.c.id)
            .join(consents, consents.c.id == latest.c.last_id)
            .where(consents.c.granted.is_(True))
        )
    return query.order_by(accounts.c.id)


async def count_recipients(core: Core) -> dict[str, int]:
    async with core.read() as conn:
        return {
            kind: int(
                await conn.scalar(select(func.count()).select_from(_recipients_query(kind).subquery())) or 0
            )
            for kind in (SERVICE, MARKETING)
        }


# --- unsubscribe links -----------------------------------------------------------------------------


async def _secret(core: Core) -> bytes:
    return (await workspace_value(core, "unsubscribe_secret", lambda: secrets.token_hex(32))).encode()


async def unsubscribe_token(core: Core, account_id: int) -> str:
    """``<account id>.<signature>``; the signature also covers the account's creation time, so a
    link of a deleted account never works for a later account that gets the same id."""
    async with core.read() as conn:
        created = await conn.scalar(select(accounts.c.created_ms).where(accounts.c.id == account_id))
    message = f"unsubscribe:{account_id}:{created}".encode()
    return f"{account_id}.{hmac.new(await _secret(core), message, hashlib.sha256).hexdigest()[:32]}"


async def account_of_token(core: Core, token: str) -> int | None:
    """The account an unsubscribe token was made for, or None if it is not genuine."""
    raw_id, _, sig = token.partition(".")
    if not (raw_id.isascii() and raw_id.isdigit()) or len(raw_id) > 12 or not sig:
        return None
    expected = (await unsubscribe_token(core, int(raw_id))).partition(".")[2]
    return int(raw_id) if hmac.compare_digest(sig.encode(), expected.encode()) else None


# --- sending ---------------------------------------------------------------------------------------


def _checked(kind: str, subject: str, text: str, checks: Checks | None = None) -> tuple[str, str]:
    """The subject and text, trimmed, if an announcement may carry them; refuses once with every
    field that is wrong (collected in ``checks`` when given, for the caller to add its own)."""
    found = checks or Checks()

    def refuse(field: str, problem: str) -> None:
        found.refuse(AnnouncementError(400, f"{field}: {problem}", errors={field: problem}))

    if kind not in (SERVICE, MARKETING):
        refuse("kind", "'service' or 'marketing'")
    subject, text = subject.strip(), text.strip()
    if not subject or len(subject) > 200 or "\n" in subject or "\r" in subject:
        refuse("subject", "one line of 1 to 200 characters")
    if not text or len(text) > 20_000:
        refuse("text", "required, at most 20000 characters")
    for value, what in ((subject, "subject"), (text, "text")):
        problem = safetext.problem(value)
        if problem and what not in found.errors:
            refuse(what, problem)
    if checks is None:
        found.done(AnnouncementError)
    return subject, text


async def preview(core: Core, operator: Account, *, kind: str, subject: str, text: str) -> dict[str, Any]:
    """The mail as its recipients will read it (the operator's own unsubscribe link stands in for
    theirs), and how many will receive it. Nothing is sent."""
    subject, text = _checked(kind, subject, text)
    async with core.read() as conn:
        count = len((await conn.execute(_recipients_query(kind))).all())
    body = _body(core, kind, text, await unsubscribe_token(core, operator.id))
    return {"kind": kind, "subject": subject, "text": text, "body": body, "recipients": count}


async def send_test(core: Core, operator: Account, to: str, **draft: str) -> str:
    """Mail the announcement to one address (the operator's own, by default), marked as a test;
    returns the address. Nobody else receives anything. ``draft``: kind, subject and text."""
    checks = Checks()  # the draft's problems and the address's, at once
    _checked(draft.get("kind", ""), draft.get("subject", ""), draft.get("text", ""), checks)
    try:
        address = check_email(to or operator.email)
    except PolicyError:
        checks.refuse(AnnouncementError(400, "the test needs an e-mail address to go to", field="test_to"))
    checks.done(AnnouncementError)
    shown = await preview(core, operator, **draft)
    await mail.send_mail(core, address, "[Test] " + shown["subject"], shown["body"])
    return address


async def create(core: Core, operator: Account, *, kind: str, subject: str, text: str) -> dict[str, Any]:
    subject, text = _checked(kind, subject, text)
    at = now_ms()
    async with core.tx() as tx:
        recipients = (await tx.conn.execute(_recipients_query(kind))).all()
        if not recipients:
            raise AnnouncementError(
                409, "nobody would receive it" + (" (no marketing consent)" if kind == MARKETING else "")
            )
        result = await tx.conn.execute(
            insert(announcements).values(
                kind=kind,
                subject=subject,
                text=text,
                created_by=operator.id,
                created_ms=at,
                recipients=len(recipients),
            )
        )
        announcement_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        await tx.conn.execute(
            insert(announcement_deliveries),
            [
                {
                    "announcement_id": announcement_id,
                    "account_id": int(r.id),
                    "email": r.email,
                    "status": "pending",
                }
                for r in recipients
            ],
        )
        await journal.record(
            tx.conn,
            journal.ANNOUNCEMENT_SENT,
            ok=True,
            origin=journal.SYSTEM,
            account=operator,
            detail=f"{kind} announcement {announcement_id} to {plural(len(recipients), 'user')}: {subject[:80]}",
        )
        tx.on_commit(lambda: schedule(core, announcement_id, at))
    return {"id": announcement_id, "kind": kind, "recipients": len(recipients)}


async def list_all(core: Core) -> list[dict[str, Any]]:
    async with core.read() as conn:
        rows = (
            await conn.execute(select(announcements).order_by(announcements.c.id.desc()).limit(100))
        ).all()
        sent: dict[int, int] = dict(
            (
                await conn.execute(
                    select(announcement_deliveries.c.announcement_id, func.count())
                    .where(announcement_deliveries.c.status == "sent")
                    .group_by(announcement_deliveries.c.announcement_id)
                )
            ).all()
        )
    return [
        {
            "id": int(r.id),
            "kind": r.kind,
            "subject": r.subject,
            "createdMs": int(r.created_ms),
            "recipients": int(r.recipients),
            "sent": int(sent.get(r.id, 0)),
            "finishedMs": r.finished_ms,
        }
        for r in rows
    ]


def schedule(core: Core, announcement_id: int, due_ms: int) -> None:
    async def run() -> None:
        await step(core, announcement_id)

    core.timers.schedule(("announcement", announcement_id), due_ms, run)


async def resume_all(core: Core) -> None:
    async with core.read() as conn:
        ids = (
            await conn.execute(select(announcements.c.id).where(announcements.c.finished_ms.is_(None)))
        ).all()
    for (announcement_id,) in ids:
        schedule(core, int(announcement_id), now_ms())


def _body(core: Core, kind: str, text: str, unsubscribe: str) -> str:
    name = core.settings.operator_legal_name
    if kind == SERVICE:
        return f"{text}\n\n--\nA service message from {name} to every user of {core.public_url}."
    return (
        f"{text}\n\n--\nYou receive news and offers from {name} because you agreed to them.\n"
        f"Unsubscribe: {core.public_url}/console/unsubscribe/{unsubscribe}"
    )


CLAIM_LEASE_MS = 10 * 60 * 1000  # a claimed delivery not marked sent by then is mailed again


async def step(core: Core, announcement_id: int) -> None:
    """Mail the next batch of recipients; reschedule until none is left.

    Each delivery is claimed (``pending`` → ``sending``) before it is mailed and marked ``sent``
    after, so two steps (another process, a restart) never mail it at the same time; a claim that
    was never completed (a crash mid-mail) is taken again after its lease."""
    at = now_ms()
    waiting = (announcement_deliveries.c.announcement_id == announcement_id) & (
        (announcement_deliveries.c.status == "pending")
        | (
            (announcement_deliveries.c.status == "sending")
            & (announcement_deliveries.c.sent_ms < at - CLAIM_LEASE_MS)
        )
    )
    async with core.read() as conn:
        row = (await conn.execute(select(announcements).where(announcements.c.id == announcement_id))).first()
        batch = (
            await conn.execute(
                select(announcement_deliveries)
                .where(waiting)
                .order_by(announcement_deliveries.c.account_id)
                .limit(BATCH)
            )
        ).all()
        unfinished = await conn.scalar(
            select(func.count())
            .select_from(announcement_deliveries)
            .where(
                (announcement_deliveries.c.announcement_id == announcement_id)
                & announcement_deliveries.c.status.in_(("pending", "sending"))
            )
        )
    if row is None or row.finished_ms is not None:
        return
    if not batch:
        if unfinished:  # claimed by another step that is mailing now: look again after its lease
            schedule(core, announcement_id, at + CLAIM_LEASE_MS)
            return
        async with core.tx() as tx:
            await tx.conn.execute(
                update(announcements)
                .where(announcements.c.id == announcement_id)
                .values(finished_ms=now_ms())
            )
        return
    for delivery in batch:
        this = (announcement_deliveries.c.announcement_id == announcement_id) & (
            announcement_deliveries.c.account_id == delivery.account_id
        )
        async with core.tx() as tx:
            claimed = await tx.conn.execute(
                update(announcement_deliveries)
                .where(this & (announcement_deliveries.c.status == delivery.status))
                .where(
                    announcement_deliveries.c.sent_ms.is_(None)
                    if delivery.sent_ms is None
                    else announcement_deliveries.c.sent_ms == delivery.sent_ms
                )
                .values(status="sending", sent_ms=now_ms())
            )
        if not claimed.rowcount:
            continue  # another step has it
        status = "sent"
        if row.kind == MARKETING and not await _still_consents(core, int(delivery.account_id)):
            status = "skipped"  # withdrew since the announcement was made
        else:
            token = await unsubscribe_token(core, int(delivery.account_id))
            try:
                extra = {}
                if row.kind == MARKETING:  # mail clients show their own "unsubscribe" for this (RFC 2369)
                    extra["List-Unsubscribe"] = f"<{core.public_url}/console/unsubscribe/{token}>"
                await mail.send_mail(
                    core, delivery.email, row.subject, _body(core, row.kind, row.text, token), extra
                )
            except Exception:  # pragma: no cover - a broken transport must not stop the others
                log.exception("announcement mail failed", account=delivery.account_id)
                status = "failed"
        async with core.tx() as tx:
            await tx.conn.execute(
                update(announcement_deliveries).where(this).values(status=status, sent_ms=now_ms())
            )
    schedule(core, announcement_id, now_ms())


async def _still_consents(core: Core, account_id: int) -> bool:
    async with core.read() as conn:
        granted = await conn.scalar(
            select(consents.c.granted)
            .where((consents.c.account_id == account_id) & (consents.c.kind == MARKETING))
            .order_by(consents.c.id.desc())
            .limit(1)
        )
    return bool(granted)

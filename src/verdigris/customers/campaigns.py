"""Campaigns (T-22): one text to the consenting contacts of a tag, through one of the tenant's
instances, with an opt-out line on every message.

Starting a campaign fixes its recipients (contacts with consent at that moment). The runner then
takes them one at a time, ``interval_s`` apart, on the timer heap: each step checks the contact's
consent again, asks the license (the same admission as the wire API), and puts the message into the
instance's outgoing queue in the same transaction that marks the recipient done, so a crash
neither loses nor repeats a step. A consent withdrawn by a reply (STOP) is stored in the
transaction of the incoming message, so it always precedes the next step. A license refusal or an
instance that is not linked pauses the campaign with the reason (auto-pause); nothing is lost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from verdigris import safetext
from verdigris.accounts.policy import Checks
from verdigris.customers.models import campaign_recipients, campaigns, contact_tags, contacts
from verdigris.customers.service import CustomerError, consenting
from verdigris.instances.service import AUTHORIZED
from verdigris.messaging import service as messaging
from verdigris.messaging.content import text_content, text_type
from verdigris.messaging.models import messages
from verdigris.store.clock import now_ms

log = structlog.get_logger("verdigris.campaigns")

if TYPE_CHECKING:
    from verdigris.core import Core

DRAFT, RUNNING, PAUSED, DONE, CANCELLED = "draft", "running", "paused", "done", "cancelled"
MAX_TEXT = 4000


def _json(row: Any, counts: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "instanceId": int(row.instance_id),
        "name": row.name,
        "text": row.text,
        "tag": row.tag,
        "intervalSeconds": int(row.interval_s),
        "status": row.status,
        "pauseReason": row.pause_reason,
        "createdMs": int(row.created_ms),
        "startedMs": row.started_ms,
        "finishedMs": row.finished_ms,
        "nextMs": row.next_ms,
        "counts": counts or {},
    }


async def _row(conn: AsyncConnection, account_id: int, campaign_id: int) -> Any:
    row = (
        await conn.execute(
            select(campaigns).where((campaigns.c.id == campaign_id) & (campaigns.c.account_id == account_id))
        )
    ).first()
    if row is None:
        raise CustomerError(404, f"no campaign {campaign_id}")
    return row


async def _counts(conn: AsyncConnection, campaign_ids: list[int]) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {i: {} for i in campaign_ids}
    if campaign_ids:
        rows = await conn.execute(
            select(campaign_recipients.c.campaign_id, campaign_recipients.c.status, func.count())
            .where(campaign_recipients.c.campaign_id.in_(campaign_ids))
            .group_by(campaign_recipients.c.campaign_id, campaign_recipients.c.status)
        )
        for campaign_id, status, count in rows:
            out[int(campaign_id)][status] = int(count)
    return out


def message_text(core: Core, text: str, name: str) -> str:
    """The campaign's text for one contact: ``{name}`` filled in, the opt-out line appended."""
    body = text.replace("{name}", name or "").strip()
    return f"{body}\n\n{core.settings.customers_optout_footer}".strip()


def _whole(raw: str, limit: int) -> int | None:
    raw = raw.strip()
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= limit else None


async def create(
    core: Core, account_id: int, *, instance: str, name: str, text: str, tag: str, interval: str
) -> dict[str, Any]:
    """A draft campaign from a form's fields (``instance``: the instance's id; ``interval``: whole
    seconds between two recipients); refuses once with every field that is wrong."""
    checks = Checks()
    name, text, tag = name.strip(), text.strip(), tag.strip().lower()

    def refuse(field: str, problem: str, status: int = 400) -> None:
        checks.refuse(CustomerError(status, f"{field}: {problem}", errors={field: problem}))

    if not name:
        refuse("name", "the campaign needs a name")
    elif len(name) > 200:
        refuse("name", "at most 200 characters")
    if not text:
        refuse("text", "the campaign needs a text")
    elif len(text) > MAX_TEXT:
        refuse("text", f"at most {MAX_TEXT} characters")
    for value, what in ((name, "name"), (text, "text"), (tag, "tag")):
        problem = safetext.problem(value)
        if problem and what not in checks.errors:
            refuse(what, problem)
    if len(tag) > 60 and "tag" not in checks.errors:
        refuse("tag", "at most 60 characters")
    low = core.settings.customers_min_interval_seconds
    interval_s = _whole(interval, 9)
    if interval_s is None or not low <= interval_s <= 86_400:
        refuse("interval", f"a whole number of seconds from {low} to 86400")
    instance_id = _whole(instance, 18)
    rec = await core.instances.get(instance_id) if instance_id is not None else None
    if instance_id is None:
        refuse("instance", "choose an instance")
    elif rec is None or rec.account_id != account_id:
        refuse("instance", f"no instance {instance_id} in this team", 404)
    checks.done(CustomerError)
    assert interval_s is not None and instance_id is not None
    async with core.tx() as tx:
        result = await tx.conn.execute(
            insert(campaigns).values(
                account_id=account_id,
                instance_id=instance_id,
                name=name,
                text=text,
                tag=tag,
                interval_s=interval_s,
                status=DRAFT,
                created_ms=now_ms(),
            )
        )
        campaign_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        row = await _row(tx.conn, account_id, campaign_id)
    return _json(row)


async def list_campaigns(core: Core, account_id: int) -> list[dict[str, Any]]:
    async with core.read() as conn:
        rows = (
            await conn.execute(
                select(campaigns).where(campaigns.c.account_id == account_id).order_by(campaigns.c.id.desc())
            )
        ).all()
        counts = await _counts(conn, [int(r.id) for r in rows])
    return [_json(r, counts[int(r.id)]) for r in rows]


async def get(core: Core, account_id: int, campaign_id: int) -> dict[str, Any]:
    """The campaign with every recipient and the delivery status of its message."""
    async with core.read() as conn:
        row = await _row(conn, account_id, campaign_id)
        counts = await _counts(conn, [campaign_id])
        recipients = (
            await conn.execute(
                select(
                    campaign_recipients,
                    contacts.c.phone,
                    contacts.c.name,
                    messages.c.status.label("delivery"),
                )
                .join(contacts, contacts.c.id == campaign_recipients.c.contact_id, isouter=True)
                .join(
                    messages,
                    (messages.c.id_message == campaign_recipients.c.id_message)
                    & (messages.c.instance_id == row.instance_id)
                    & (messages.c.direction == "out"),
                    isouter=True,
                )
                .where(campaign_recipients.c.campaign_id == campaign_id)
                .order_by(campaign_recipients.c.position)
            )
        ).all()
    out = _json(row, counts[campaign_id])
    out["recipients"] = [
        {
            "contactId": int(r.contact_id),
            "phone": r.phone,
            "name": r.name,
            "status": r.status,
            "idMessage": r.id_message,
            "delivery": r.delivery,
            "doneMs": r.done_ms,
        }
        for r in recipients
    ]
    return out


async def start(core: Core, account_id: int, campaign_id: int) -> dict[str, Any]:
    """Fix the recipients (consenting contacts of the tag, now) and start sending."""
    at = now_ms()
    async with core.tx() as tx:
        row = await _row(tx.conn, account_id, campaign_id)
        await _own_instance(core, account_id, int(row.instance_id))
        # Claim the transition first: of two concurrent starts, one changes the row, the other 409s.
        moved = await tx.conn.execute(
            update(campaigns)
            .where((campaigns.c.id == campaign_id) & (campaigns.c.status == DRAFT))
            .values(status=RUNNING, started_ms=at, next_ms=at, pause_reason="")
        )
        if not moved.rowcount:
            raise CustomerError(409, f"the campaign is {row.status}; only a draft can start")
        query = consenting(select(contacts.c.id).where(contacts.c.account_id == account_id))
        if row.tag:
            query = query.where(
                contacts.c.id.in_(select(contact_tags.c.contact_id).where(contact_tags.c.tag == row.tag))
            )
        ids = [int(r[0]) for r in (await tx.conn.execute(query.order_by(contacts.c.id))).all()]
        if not ids:
            where = f" tagged {row.tag!r}" if row.tag else ""
            raise CustomerError(409, f"no contacts{where} have consented to promotions")
        await tx.conn.execute(
            insert(campaign_recipients),
            [
                {"campaign_id": campaign_id, "contact_id": cid, "position": n, "status": "pending"}
                for n, cid in enumerate(ids)
            ],
        )
        tx.on_commit(lambda: schedule(core, campaign_id, at))
    return await get(core, account_id, campaign_id)


async def pause(core: Core, account_id: int, campaign_id: int) -> dict[str, Any]:
    await _move(core, account_id, campaign_id, (RUNNING,), PAUSED, "paused by the user")
    return await get(core, account_id, campaign_id)


async def resume(core: Core, account_id: int, campaign_id: int) -> dict[str, Any]:
    at = now_ms()
    async with core.read() as conn:
        row = await _row(conn, account_id, campaign_id)
    await _own_instance(core, account_id, int(row.instance_id))
    await _move(core, account_id, campaign_id, (PAUSED,), RUNNING, "", next_ms=at)
    schedule(core, campaign_id, at)
    return await get(core, account_id, campaign_id)


async def cancel(core: Core, account_id: int, campaign_id: int) -> dict[str, Any]:
    await _move(core, account_id, campaign_id, (DRAFT, RUNNING, PAUSED), CANCELLED, "", finished_ms=now_ms())
    core.timers.cancel(("campaign", campaign_id))
    return await get(core, account_id, campaign_id)


async def _move(
    core: Core,
    account_id: int,
    campaign_id: int,
    allowed: tuple[str, ...],
    to: str,
    reason: str,
    **values: Any,
) -> None:
    async with core.tx() as tx:
        row = await _row(tx.conn, account_id, campaign_id)
        moved = await tx.conn.execute(
            update(campaigns)
            .where((campaigns.c.id == campaign_id) & campaigns.c.status.in_(allowed))
            .values(status=to, pause_reason=reason, **values)
        )
        if not moved.rowcount:
            raise CustomerError(409, f"the campaign is {row.status}")


async def _own_instance(core: Core, account_id: int, instance_id: int) -> None:
    rec = await core.instances.get(instance_id)
    if rec is None or rec.account_id != account_id:
        raise CustomerError(409, "the campaign's instance no longer belongs to this team")


# --- the runner ----------------------------------------------------------------------------------


def schedule(core: Core, campaign_id: int, due_ms: int) -> None:
    async def run() -> None:
        await step(core, campaign_id)

    core.timers.schedule(("campaign", campaign_id), due_ms, run)


async def resume_all(core: Core) -> None:
    """After a start: put every running campaign back on the timer heap."""
    async with core.read() as conn:
        rows = (
            await conn.execute(
                select(campaigns.c.id, campaigns.c.next_ms).where(campaigns.c.status == RUNNING)
            )
        ).all()
    for campaign_id, next_ms in rows:
        schedule(core, int(campaign_id), int(next_ms or now_ms()))


async def _pause_for(core: Core, campaign_id: int, reason: str) -> None:
    async with core.tx() as tx:
        await tx.conn.execute(
            update(campaigns)
            .where((campaigns.c.id == campaign_id) & (campaigns.c.status == RUNNING))
            .values(status=PAUSED, pause_reason=reason[:400])
        )


async def step(core: Core, campaign_id: int) -> None:
    """One step; anything unexpected pauses the campaign with the error (never a silent stall)."""
    try:
        await _step(core, campaign_id)
    except Exception as exc:
        log.exception("campaign step failed", campaign=campaign_id)
        await _pause_for(core, campaign_id, f"stopped by an error: {type(exc).__name__}: {exc}"[:400])


async def _step(core: Core, campaign_id: int) -> None:
    """Send to the next recipient who still consents; skip those who withdrew; then wait."""
    async with core.read() as conn:
        row = (await conn.execute(select(campaigns).where(campaigns.c.id == campaign_id))).first()
    if row is None or row.status != RUNNING:
        return
    now = now_ms()
    if row.next_ms is not None and int(row.next_ms) > now:
        schedule(core, campaign_id, int(row.next_ms))  # woken early (e.g. after a restart)
        return
    rec = await core.instances.get(int(row.instance_id))
    if rec is None:
        await _pause_for(core, campaign_id, "the instance was deleted")
        return
    if rec.account_id != int(row.account_id):
        await _pause_for(core, campaign_id, "the instance no longer belongs to this team")
        return
    if rec.state != AUTHORIZED:
        await _pause_for(core, campaign_id, f"the instance is {rec.state}: link it to a phone, then resume")
        return
    async with core.tx() as tx:
        while True:
            nxt = (
                await tx.conn.execute(
                    select(campaign_recipients.c.contact_id, contacts)
                    .join(contacts, contacts.c.id == campaign_recipients.c.contact_id, isouter=True)
                    .where(
                        (campaign_recipients.c.campaign_id == campaign_id)
                        & (campaign_recipients.c.status == "pending")
                    )
                    .order_by(campaign_recipients.c.position)
                    .limit(1)
                )
            ).first()
            if nxt is None:
                await tx.conn.execute(
                    update(campaigns)
                    .where(campaigns.c.id == campaign_id)
                    .values(status=DONE, finished_ms=now, next_ms=None)
                )
                return
            mark = update(campaign_recipients).where(
                (campaign_recipients.c.campaign_id == campaign_id)
                & (campaign_recipients.c.contact_id == nxt.contact_id)
            )
            if nxt.phone is None or nxt.consent_ms is None or nxt.optout_ms is not None:
                await tx.conn.execute(mark.values(status="skipped", done_ms=now))
                continue  # consent withdrawn since the start: never sent, try the next one
            break
    chat_id = f"{nxt.phone}@c.us"
    content = text_content(message_text(core, row.text, nxt.name), link_preview=True)
    message = messaging.OutgoingMessage(
        chat_id=chat_id,
        kind="sendMessage",
        type_message=text_type(content),
        content=content,
        request={"chatId": chat_id, "message": content.get("text", "")},
    )
    try:
        admission = await messaging.check_send(core, rec, message, messaging.Origin.CAMPAIGN)
        async with core.tx() as tx:
            # Checked again inside the writing transaction: a STOP stored meanwhile wins.
            still = await tx.conn.scalar(
                consenting(select(func.count()).select_from(contacts).where(contacts.c.id == nxt.contact_id))
            )
            state = await tx.conn.scalar(select(campaigns.c.status).where(campaigns.c.id == campaign_id))
            if state != RUNNING:
                return
            due = now + int(row.interval_s) * 1000
            # Claim the recipient: a concurrent step (a resume racing a running one, another
            # process) finds it no longer pending and does nothing.
            claimed = await tx.conn.execute(
                mark.where(campaign_recipients.c.status == "pending").values(
                    status="sent" if still else "skipped", done_ms=now
                )
            )
            if not claimed.rowcount:
                return
            if not still:
                due = now  # nothing was sent: go on at once
            else:
                id_message = await messaging.enqueue(tx, rec, admission)
                await tx.conn.execute(mark.values(id_message=id_message))
                await tx.conn.execute(
                    update(contacts)
                    .where(contacts.c.id == nxt.contact_id)
                    .values(campaigns_reached=contacts.c.campaigns_reached + 1)
                )
            await tx.conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(next_ms=due))
            tx.on_commit(lambda: schedule(core, campaign_id, due))
    except messaging.ContentBlocked as blocked:
        async with core.tx() as tx:
            await blocked.record(tx)
        await _pause_for(core, campaign_id, f"the content rules block this text: {blocked.verdict.reason}")
    except messaging.ChannelRefused as refused:
        await _pause_for(core, campaign_id, f"the instance's network refuses this message: {refused.reason}")
    except messaging.LicenseRefused as refused:
        await _pause_for(core, campaign_id, f"the license refused sending: {refused.reason}")
    except messaging.MessageRefused as refused:
        await _pause_for(core, campaign_id, f"not sent: {refused.reason}")

"""Statuses (stories) on the sandbox network.

A status is a message to ``status@broadcast``. Sent through the API it is queued and paced like
any message (messaging.service.send); when the send worker hands it to the network, :func:`route`
records it and delivers it to its audience:

* ``participants`` given: those accounts (that exist on the network), never the author;
* no ``participants``: every account the author has a chat with — any personal chat on the
  author's phone or on an instance linked to the author's number.

Each receiving account gets a view row (``delivered``); a sandbox phone viewing the status turns it
into ``read`` and the author's instances get the ``read`` status. getStatusStatistic lists these
rows. A deleted status disappears for everyone; its statistics stay readable by the author.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import distinct, insert, select, update

from verdigris.channels.capabilities import StatusNotFound, StatusPost
from verdigris.channels.sandbox.models import (
    sandbox_blocks,
    sandbox_phone_messages,
    sandbox_phones,
    sandbox_status_views,
    sandbox_statuses,
)
from verdigris.channels.sandbox.network import (
    Outgoing,
    SandboxError,
    phone_name,
    phone_of,
    wid_of,
)
from verdigris.instances.service import find_by_wid
from verdigris.messaging import lifecycle
from verdigris.messaging.content import new_device_id
from verdigris.messaging.models import messages
from verdigris.messaging.vocabulary import STATUS_BROADCAST, Status
from verdigris.store.clock import now_ms

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from verdigris.channels.sandbox.network import SandboxNetwork
    from verdigris.core import Core, Tx
    from verdigris.instances.service import InstanceRecord


def _status(row: Any, status: str = "sent") -> StatusPost:
    return StatusPost(
        id_message=row.id_message,
        author=row.author,
        author_name=row.author_name,
        type_message=row.type_message,
        content=orjson.loads(row.content),
        participants=orjson.loads(row.participants),
        sent_by_api=bool(row.sent_by_api),
        created_ms=int(row.created_ms),
        status=status,
    )


async def audience(conn: AsyncConnection, author: str, participants: list[str]) -> list[str]:
    """Who receives a status of ``author`` (see the module docstring)."""
    if participants:
        wanted = list(dict.fromkeys(participants))
    else:
        wanted = []
        phone = phone_of(author)
        if phone is not None:
            wanted += (
                await conn.execute(
                    select(distinct(sandbox_phone_messages.c.chat_id)).where(
                        sandbox_phone_messages.c.phone == phone
                    )
                )
            ).scalars()
        ids = await find_by_wid(conn, author)
        if ids:
            wanted += (
                await conn.execute(
                    select(distinct(messages.c.chat_id)).where(messages.c.instance_id.in_(ids))
                )
            ).scalars()
        wanted = sorted(set(wanted))
    candidates = {w: phone_of(w) for w in wanted if w != author}
    numbers = [p for p in candidates.values() if p is not None]
    existing = set(
        (
            await conn.execute(select(sandbox_phones.c.number).where(sandbox_phones.c.number.in_(numbers)))
        ).scalars()
    )
    # A phone that has blocked the author sees none of its statuses, as on WhatsApp.
    existing -= set(
        (
            await conn.execute(
                select(sandbox_blocks.c.phone).where(
                    (sandbox_blocks.c.blocked == author) & sandbox_blocks.c.phone.in_(numbers)
                )
            )
        ).scalars()
    )
    return [w for w, p in candidates.items() if p in existing]


async def route(channel: SandboxNetwork, tx: Tx, msg: Outgoing) -> None:
    """A status leaves its author's account: record it and deliver it to its audience."""
    content = dict(msg.content)
    participants = [str(p) for p in content.get("participants") or []]
    viewers = await audience(tx.conn, msg.sender_wid, participants)
    now = now_ms()
    await tx.conn.execute(
        insert(sandbox_statuses).values(
            id_message=msg.id_message,
            author=msg.sender_wid,
            author_name=msg.sender_name,
            type_message=msg.type_message,
            content=orjson.dumps(content).decode(),
            participants=orjson.dumps(participants).decode(),
            sent_by_api=msg.by_api,
            created_ms=now,
        )
    )
    await channel._report_status(tx, msg.sender_wid, STATUS_BROADCAST, msg.id_message, Status.SENT, "", msg)
    if viewers:
        rows = [
            {"id_message": msg.id_message, "viewer": v, "status": "delivered", "updated_ms": now}
            for v in viewers
        ]
        await tx.conn.execute(insert(sandbox_status_views), rows)
        await channel._report_status(tx, msg.sender_wid, STATUS_BROADCAST, msg.id_message, Status.DELIVERED)


# --- what phones do ------------------------------------------------------------------------------


async def phone_post(
    channel: SandboxNetwork, phone: str, text: str, background: str, font: str, participants: list[str]
) -> str:
    """The person posts a text status from a sandbox phone."""
    async with channel.core.tx() as tx:
        if not await channel.on_network(tx, phone):
            raise SandboxError(f"no sandbox phone {phone}")
        msg = Outgoing(
            sender_wid=wid_of(phone),
            sender_name=await phone_name(tx, phone),
            chat_id=STATUS_BROADCAST,
            id_message=new_device_id(),
            type_message="extendedTextMessage",
            content={"text": text, "backgroundColor": background, "font": font, "participants": participants},
            by_api=False,
            api_instance_id=None,
        )
        await route(channel, tx, msg)
    return msg.id_message


async def phone_view(channel: SandboxNetwork, phone: str, id_message: str) -> None:
    """The person opens a status on a sandbox phone: its author learns it was viewed."""
    viewer = wid_of(phone)
    async with channel.core.tx() as tx:
        row = (
            await tx.conn.execute(
                select(sandbox_statuses.c.author, sandbox_status_views.c.status)
                .join(
                    sandbox_status_views, sandbox_status_views.c.id_message == sandbox_statuses.c.id_message
                )
                .where(
                    (sandbox_statuses.c.id_message == id_message)
                    & (sandbox_status_views.c.viewer == viewer)
                    & sandbox_statuses.c.deleted_ms.is_(None)
                )
            )
        ).first()
        if row is None:
            raise SandboxError(f"phone {phone} has no status {id_message} to view")
        if row.status == "read":
            return
        await tx.conn.execute(
            update(sandbox_status_views)
            .where(
                (sandbox_status_views.c.id_message == id_message) & (sandbox_status_views.c.viewer == viewer)
            )
            .values(status="read", updated_ms=now_ms())
        )
        await channel._report_status(tx, row.author, STATUS_BROADCAST, id_message, Status.READ)


# --- journals ------------------------------------------------------------------------------------


async def incoming(core: Core, wid: str, minutes: int) -> list[StatusPost]:
    """Statuses others posted that reached ``wid`` in the last ``minutes``, newest first."""
    since = now_ms() - minutes * 60_000
    async with core.read() as conn:
        rows = (
            await conn.execute(
                select(sandbox_statuses, sandbox_status_views.c.status.label("view"))
                .join(
                    sandbox_status_views, sandbox_status_views.c.id_message == sandbox_statuses.c.id_message
                )
                .where(
                    (sandbox_status_views.c.viewer == wid)
                    & sandbox_statuses.c.deleted_ms.is_(None)
                    & (sandbox_statuses.c.created_ms >= since)
                )
                .order_by(sandbox_statuses.c.id.desc())
                .limit(10_000)
            )
        ).all()
    return [_status(r, r.view) for r in rows]


async def outgoing(core: Core, wid: str, minutes: int) -> list[StatusPost]:
    """Statuses ``wid`` posted in the last ``minutes`` (not deleted), newest first."""
    since = now_ms() - minutes * 60_000
    async with core.read() as conn:
        rows = (
            await conn.execute(
                select(sandbox_statuses)
                .where(
                    (sandbox_statuses.c.author == wid)
                    & sandbox_statuses.c.deleted_ms.is_(None)
                    & (sandbox_statuses.c.created_ms >= since)
                )
                .order_by(sandbox_statuses.c.id.desc())
                .limit(10_000)
            )
        ).all()
        found = []
        for row in rows:
            views = set(
                (
                    await conn.execute(
                        select(sandbox_status_views.c.status).where(
                            sandbox_status_views.c.id_message == row.id_message
                        )
                    )
                ).scalars()
            )
            status = "read" if "read" in views else "delivered" if views else "sent"
            found.append(_status(row, status))
    return found


async def statistic(core: Core, wid: str, id_message: str) -> list[dict[str, Any]]:
    """Per-viewer state of a status ``wid`` posted: ``[{participant, status, at_ms}]``."""
    async with core.read() as conn:
        author = await conn.scalar(
            select(sandbox_statuses.c.author).where(sandbox_statuses.c.id_message == id_message)
        )
        if author is None or author != wid:
            raise StatusNotFound(id_message)
        rows = (
            await conn.execute(
                select(sandbox_status_views)
                .where(sandbox_status_views.c.id_message == id_message)
                .order_by(sandbox_status_views.c.viewer)
            )
        ).all()
    return [{"participant": r.viewer, "status": r.status, "at_ms": int(r.updated_ms)} for r in rows]


async def delete(core: Core, rec: InstanceRecord, id_message: str) -> None:
    """Withdraw a status of the instance's account (or one still waiting in its queue)."""
    async with core.tx() as tx:
        result = await tx.conn.execute(
            update(sandbox_statuses)
            .where(
                (sandbox_statuses.c.id_message == id_message)
                & (sandbox_statuses.c.author == rec.wid)
                & sandbox_statuses.c.deleted_ms.is_(None)
            )
            .values(deleted_ms=now_ms())
        )
        if result.rowcount:
            return
        withdrawn = await lifecycle.withdraw(
            tx,
            (messages.c.instance_id == rec.id)
            & (messages.c.id_message == id_message)
            & (messages.c.chat_id == STATUS_BROADCAST),
        )
        if not withdrawn:
            raise StatusNotFound(id_message)


async def phone_statuses(core: Core, phone: str) -> list[dict[str, Any]]:
    """What a sandbox phone sees in its Updates tab: statuses that reached it, oldest first."""
    rows = await incoming(core, wid_of(phone), 30 * 24 * 60)
    return [
        {
            "idMessage": s.id_message,
            "author": s.author,
            "authorName": s.author_name,
            "typeMessage": s.type_message,
            "content": {k: v for k, v in s.content.items() if k != "participants"},
            "viewed": s.status == "read",
            "timestamp": s.created_ms // 1000,
        }
        for s in reversed(rows)
    ]

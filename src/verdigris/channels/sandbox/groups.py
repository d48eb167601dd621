"""Groups on the sandbox network: membership, roles, settings, pictures, and group messages.

A group is a chat id ``120363xxxxxxxxxxxx@g.us`` (18 digits, as WhatsApp's new-style ids) with
members, each ``member``, ``admin`` or ``superadmin`` (the creator). Every action is taken *as an
account* (a wid): an instance acts as the account it is linked to, a sandbox phone as itself.

Rules (WhatsApp's, simplified and documented in docs/groups.md):

* only admins add, remove, promote and demote members and change the group's switches;
* the name and picture may be changed by any member while ``members_edit_info`` is on (the
  default, ``allowParticipantsEditGroupSettings``), otherwise by admins only;
* while ``members_send`` is off (``allowParticipantsSendMessages``) only admins can send;
* the creator (superadmin) cannot be removed or demoted; when the last admin leaves, the longest
  standing member becomes admin.

A group message reaches every other member: their phone and each authorized instance linked to
them, with ``senderData.chatId`` = the group and ``sender`` = the author. The author's statuses:
``sent``, ``delivered`` once any member got it, ``read`` once every member that got it has read it
(on any device). A sender who is not a member gets ``notInGroup``.

Every change is recorded in ``sandbox_group_events`` (the control API shows them); GREEN-API
documents no notification for membership changes, so none is emitted.
"""

from __future__ import annotations

import secrets
import string
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import delete, insert, select, update

from verdigris.channels.capabilities import (
    ADMIN,
    INVITE_PREFIX,
    MEMBER,
    SUPERADMIN,
    Group,
    GroupError,
    picture_kind,
)
from verdigris.channels.sandbox.models import (
    sandbox_group_events,
    sandbox_group_members,
    sandbox_groups,
    sandbox_phone_messages,
    sandbox_phones,
)
from verdigris.channels.sandbox.network import (
    Outgoing,
    phone_of,
    wid_of,
)
from verdigris.instances.models import instances
from verdigris.instances.service import AUTHORIZED, NOT_AUTHORIZED
from verdigris.messaging.incoming import IncomingMessage, receive
from verdigris.messaging.models import messages
from verdigris.messaging.vocabulary import Status
from verdigris.store.clock import now_ms

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from verdigris.channels.sandbox.network import SandboxNetwork
    from verdigris.core import Core, Tx

GROUP_SUFFIX = "@g.us"
# GREEN-API refuses to send to bigger groups (error SWE004 in the failed status).
MAX_SEND_PARTICIPANTS = 300
_INVITE_ALPHABET = string.ascii_letters + string.digits


def is_group(chat_id: str) -> bool:
    return chat_id.endswith(GROUP_SUFFIX)


async def load(conn: AsyncConnection, group_id: str) -> Group | None:
    row = (await conn.execute(select(sandbox_groups).where(sandbox_groups.c.id == group_id))).first()
    if row is None:
        return None
    members = (
        await conn.execute(
            select(sandbox_group_members.c.wid, sandbox_group_members.c.role)
            .where(sandbox_group_members.c.group_id == group_id)
            .order_by(sandbox_group_members.c.joined_ms, sandbox_group_members.c.wid)
        )
    ).all()
    return Group(
        id=row.id,
        subject=row.subject,
        owner=row.owner,
        created_ms=int(row.created_ms),
        subject_ms=int(row.subject_ms),
        subject_owner=row.subject_owner,
        invite_code=row.invite_code,
        members_edit_info=bool(row.members_edit_info),
        members_send=bool(row.members_send),
        picture=row.picture,
        # The creator first, then by seniority (the order WhatsApp lists participants in).
        members={m.wid: m.role for m in sorted(members, key=lambda m: m.role != SUPERADMIN)},
    )


async def get_group(core: Core, group_id: str, actor: str = "") -> Group | None:
    async with core.read() as conn:
        return await load(conn, group_id)


async def groups_of(core: Core, wid: str) -> list[Group]:
    async with core.read() as conn:
        ids = (
            await conn.execute(
                select(sandbox_group_members.c.group_id).where(sandbox_group_members.c.wid == wid)
            )
        ).scalars()
        found = [await load(conn, gid) for gid in ids]
    return [g for g in found if g is not None]


async def events(core: Core, group_id: str) -> list[dict[str, Any]]:
    async with core.read() as conn:
        rows = (
            await conn.execute(
                select(sandbox_group_events)
                .where(sandbox_group_events.c.group_id == group_id)
                .order_by(sandbox_group_events.c.id)
            )
        ).all()
    return [
        {"kind": r.kind, "actor": r.actor, "target": r.target, "detail": r.detail, "atMs": int(r.at_ms)}
        for r in rows
    ]


# --- actions -------------------------------------------------------------------------------------


async def _has_account(conn: AsyncConnection, wid: str) -> bool:
    phone = phone_of(wid)
    if phone is None:
        return False
    found = await conn.scalar(select(sandbox_phones.c.number).where(sandbox_phones.c.number == phone))
    return found is not None


async def _event(tx: Tx, group_id: str, kind: str, actor: str, target: str = "", detail: str = "") -> None:
    await tx.conn.execute(
        insert(sandbox_group_events).values(
            group_id=group_id, kind=kind, actor=actor, target=target, detail=detail[:200], at_ms=now_ms()
        )
    )


async def _acting(tx: Tx, group_id: str, actor: str, *, admin: bool) -> Group:
    group = await load(tx.conn, group_id)
    if group is None:
        raise GroupError("not_found", f"no group {group_id} on the sandbox network")
    if group.role(actor) is None:
        raise GroupError("not_member", f"{actor} is not a participant of {group_id}")
    if admin and not group.is_admin(actor):
        raise GroupError("not_admin", f"{actor} is not an admin of {group_id}")
    return group


async def create_group(core: Core, actor: str, name: str, chat_ids: list[str]) -> Group:
    """Create a group owned by ``actor`` with every listed account that exists on the network.

    Numbers without an account are left out (as WhatsApp does); the creator is superadmin.
    """
    async with core.tx() as tx:
        if not await _has_account(tx.conn, actor):
            raise GroupError("no_account", f"{actor} has no account on the sandbox network")
        while True:
            group_id = "120363" + "".join(secrets.choice(string.digits) for _ in range(12)) + GROUP_SUFFIX
            taken = await tx.conn.scalar(select(sandbox_groups.c.id).where(sandbox_groups.c.id == group_id))
            if taken is None:
                break
        now = now_ms()
        await tx.conn.execute(
            insert(sandbox_groups).values(
                id=group_id,
                subject=name,
                owner=actor,
                created_ms=now,
                subject_ms=now,
                subject_owner=actor,
                invite_code="".join(secrets.choice(_INVITE_ALPHABET) for _ in range(22)),
                members_edit_info=True,
                members_send=True,
                picture="",
            )
        )
        await tx.conn.execute(
            insert(sandbox_group_members).values(group_id=group_id, wid=actor, role=SUPERADMIN, joined_ms=now)
        )
        await _event(tx, group_id, "create", actor, detail=name)
        added: set[str] = {actor}
        for wid in chat_ids:
            if wid in added or not await _has_account(tx.conn, wid):
                continue
            added.add(wid)
            await tx.conn.execute(
                insert(sandbox_group_members).values(group_id=group_id, wid=wid, role=MEMBER, joined_ms=now)
            )
            await _event(tx, group_id, "add", actor, wid)
        group = await load(tx.conn, group_id)
    assert group is not None
    return group


async def rename(core: Core, actor: str, group_id: str, name: str) -> None:
    async with core.tx() as tx:
        group = await _acting(tx, group_id, actor, admin=False)
        if not group.members_edit_info and not group.is_admin(actor):
            raise GroupError("not_admin", "only admins may edit this group's info")
        await tx.conn.execute(
            update(sandbox_groups)
            .where(sandbox_groups.c.id == group_id)
            .values(subject=name, subject_ms=now_ms(), subject_owner=actor)
        )
        await _event(tx, group_id, "subject", actor, detail=name)


async def update_settings(
    core: Core, actor: str, group_id: str, *, edit_info: bool | None, send: bool | None
) -> None:
    async with core.tx() as tx:
        await _acting(tx, group_id, actor, admin=True)
        values: dict[str, Any] = {}
        if edit_info is not None:
            values["members_edit_info"] = edit_info
        if send is not None:
            values["members_send"] = send
        if values:
            await tx.conn.execute(
                update(sandbox_groups).where(sandbox_groups.c.id == group_id).values(**values)
            )
            detail = ",".join(f"{k}={v}" for k, v in values.items())
            await _event(tx, group_id, "settings", actor, detail=detail)


async def add_participant(core: Core, actor: str, group_id: str, wid: str) -> None:
    async with core.tx() as tx:
        group = await _acting(tx, group_id, actor, admin=True)
        if group.role(wid) is not None:
            raise GroupError("already", f"{wid} is already a participant")
        if not await _has_account(tx.conn, wid):
            raise GroupError("no_account", f"{wid} has no account on the sandbox network")
        await tx.conn.execute(
            insert(sandbox_group_members).values(group_id=group_id, wid=wid, role=MEMBER, joined_ms=now_ms())
        )
        await _event(tx, group_id, "add", actor, wid)


async def remove_participant(core: Core, actor: str, group_id: str, wid: str) -> None:
    async with core.tx() as tx:
        group = await _acting(tx, group_id, actor, admin=True)
        role = group.role(wid)
        if role is None:
            raise GroupError("not_participant", f"{wid} is not a participant")
        if role == SUPERADMIN:
            raise GroupError("owner", "the group's creator cannot be removed")
        await _drop_member(tx, group, wid)
        await _event(tx, group_id, "remove", actor, wid)


async def set_admin(core: Core, actor: str, group_id: str, wid: str, admin: bool) -> None:
    async with core.tx() as tx:
        group = await _acting(tx, group_id, actor, admin=True)
        role = group.role(wid)
        if role is None:
            raise GroupError("not_participant", f"{wid} is not a participant")
        if role == SUPERADMIN:
            raise GroupError("owner", "the group's creator is always an admin")
        if (role == ADMIN) == admin:
            raise GroupError("already", f"{wid} is {'already' if admin else 'not'} an admin")
        await tx.conn.execute(
            update(sandbox_group_members)
            .where((sandbox_group_members.c.group_id == group_id) & (sandbox_group_members.c.wid == wid))
            .values(role=ADMIN if admin else MEMBER)
        )
        await _event(tx, group_id, "promote" if admin else "demote", actor, wid)


async def leave(core: Core, actor: str, group_id: str) -> None:
    async with core.tx() as tx:
        group = await _acting(tx, group_id, actor, admin=False)
        await _drop_member(tx, group, actor)
        await _event(tx, group_id, "leave", actor)


async def join_by_invite(core: Core, wid: str, invite_link: str) -> Group:
    """An account opens a group's invite link and joins."""
    code = invite_link.removeprefix(INVITE_PREFIX).strip("/")
    async with core.tx() as tx:
        group_id = await tx.conn.scalar(
            select(sandbox_groups.c.id).where(sandbox_groups.c.invite_code == code)
        )
        group = await load(tx.conn, group_id) if group_id else None
        if group is None:
            raise GroupError("not_found", "this invite link does not belong to any group")
        if group.role(wid) is not None:
            raise GroupError("already", f"{wid} is already a participant")
        await tx.conn.execute(
            insert(sandbox_group_members).values(group_id=group.id, wid=wid, role=MEMBER, joined_ms=now_ms())
        )
        await _event(tx, group.id, "join", wid, detail="invite link")
    return group


async def _drop_member(tx: Tx, group: Group, wid: str) -> None:
    await tx.conn.execute(
        delete(sandbox_group_members).where(
            (sandbox_group_members.c.group_id == group.id) & (sandbox_group_members.c.wid == wid)
        )
    )
    rest = {w: r for w, r in group.members.items() if w != wid}
    if rest and not any(r in (ADMIN, SUPERADMIN) for r in rest.values()):
        heir = next(iter(rest))
        await tx.conn.execute(
            update(sandbox_group_members)
            .where((sandbox_group_members.c.group_id == group.id) & (sandbox_group_members.c.wid == heir))
            .values(role=ADMIN)
        )
        await _event(tx, group.id, "promote", wid, heir, "last admin left")


def picture_dir(core: Core) -> Path:
    return core.settings.data_dir / "group-pictures"


def picture_url(core: Core, name: str) -> str:
    return f"{core.media_url}/sandbox-media/group-pictures/{name}" if name else ""


async def set_profile_picture(core: Core, phone: str, data: bytes) -> str:
    """Store a phone's profile picture (a checked image) and return its URL."""
    kind = picture_kind(data)
    assert kind is not None
    name = f"profile-{phone}-{secrets.token_hex(8)}.{kind}"
    folder = picture_dir(core)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    async with core.tx() as tx:
        old = await tx.conn.scalar(select(sandbox_phones.c.picture).where(sandbox_phones.c.number == phone))
        await tx.conn.execute(
            update(sandbox_phones).where(sandbox_phones.c.number == phone).values(picture=name)
        )
    if old and old != name:
        (folder / old).unlink(missing_ok=True)
    return picture_url(core, name)


async def profile_picture_url(core: Core, phone: str) -> str:
    async with core.read() as conn:
        name = await conn.scalar(select(sandbox_phones.c.picture).where(sandbox_phones.c.number == phone))
    return picture_url(core, name or "")


async def set_picture(core: Core, actor: str, group_id: str, data: bytes) -> str:
    """Store the picture (in the data dir) and return its URL. ``data`` is a checked image."""
    kind = picture_kind(data)
    assert kind is not None
    async with core.read() as conn:
        group = await load(conn, group_id)
    if group is None:
        raise GroupError("not_found", f"no group {group_id} on the sandbox network")
    if group.role(actor) is None:
        raise GroupError("not_member", f"{actor} is not a participant of {group_id}")
    if not group.members_edit_info and not group.is_admin(actor):
        raise GroupError("not_admin", "only admins may edit this group's info")
    name = f"{group_id.split('@')[0]}-{secrets.token_hex(8)}.{kind}"
    folder = picture_dir(core)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    async with core.tx() as tx:
        await tx.conn.execute(
            update(sandbox_groups).where(sandbox_groups.c.id == group_id).values(picture=name)
        )
        await _event(tx, group_id, "picture", actor, detail=name)
    if group.picture and group.picture != name:
        (folder / group.picture).unlink(missing_ok=True)
    return picture_url(core, name)


# --- group messages ------------------------------------------------------------------------------


async def route(channel: SandboxNetwork, tx: Tx, msg: Outgoing) -> None:
    """Deliver a message sent to a group (called by the network's router)."""
    group = await load(tx.conn, msg.chat_id)
    if group is None or group.role(msg.sender_wid) is None:
        await channel._report_status(
            tx, msg.sender_wid, msg.chat_id, msg.id_message, Status.NOT_IN_GROUP, "", msg
        )
        return
    if not group.members_send and not group.is_admin(msg.sender_wid):
        await channel._report_status(
            tx,
            msg.sender_wid,
            msg.chat_id,
            msg.id_message,
            Status.FAILED,
            "only admins can send messages to this group",
            msg,
        )
        return
    if len(group.members) > MAX_SEND_PARTICIPANTS:
        description = (
            f"SWE004: the number of participants in the group has been exceeded - {MAX_SEND_PARTICIPANTS}"
        )
        await channel._report_status(
            tx, msg.sender_wid, msg.chat_id, msg.id_message, Status.FAILED, description, msg
        )
        return
    now = now_ms()
    await channel._sender_copies(tx, msg, now, chat_name=group.subject)
    await channel._report_status(tx, msg.sender_wid, msg.chat_id, msg.id_message, Status.SENT, "", msg)
    others = [wid for wid in group.members if wid != msg.sender_wid]
    phones = [p for p in (phone_of(wid) for wid in others) if p is not None]
    with_account = set(
        (
            await tx.conn.execute(select(sandbox_phones.c.number).where(sandbox_phones.c.number.in_(phones)))
        ).scalars()
    )
    content = orjson.dumps(msg.content).decode()
    phone_rows = [
        {
            "phone": phone,
            "chat_id": group.id,
            "id_message": msg.id_message,
            "direction": "in",
            "sender": msg.sender_wid,
            "sender_name": msg.sender_name,
            "type_message": msg.type_message,
            "content": content,
            "status": "delivered",
            "read": False,
            "created_ms": now,
        }
        for phone in phones
        if phone in with_account
    ]
    if phone_rows:
        await tx.conn.execute(insert(sandbox_phone_messages), phone_rows)
    delivered = bool(phone_rows)
    auto_read = False
    incoming = IncomingMessage(
        msg.id_message,
        group.id,
        msg.sender_wid,
        msg.sender_name,
        msg.type_message,
        msg.content,
        now,
        chat_name=group.subject,
    )
    linked = (
        await tx.conn.execute(
            select(instances.c.id).where(
                instances.c.wid.in_(others)
                & (instances.c.state != NOT_AUTHORIZED)
                & (instances.c.channel == "sandbox")
                & instances.c.deleted_ms.is_(None)
            )
        )
    ).scalars()
    for instance_id in linked:
        target = await channel.core.instances.get(int(instance_id), tx.conn)
        if target is None or target.state != AUTHORIZED:
            continue
        auto_read = await receive(tx, target, incoming) or auto_read
        delivered = True
    if delivered:
        await channel._report_status(tx, msg.sender_wid, group.id, msg.id_message, Status.DELIVERED)
    if auto_read:
        await report_read(channel, tx, group.id, msg.sender_wid, msg.id_message)


async def report_read(channel: SandboxNetwork, tx: Tx, group_id: str, author: str, id_message: str) -> None:
    """A member read a group message: once every account that received it has read it on some
    device, the author learns it was read."""
    seen: dict[str, bool] = {}
    phone_rows = await tx.conn.execute(
        select(sandbox_phone_messages.c.phone, sandbox_phone_messages.c.read).where(
            (sandbox_phone_messages.c.id_message == id_message)
            & (sandbox_phone_messages.c.chat_id == group_id)
            & (sandbox_phone_messages.c.direction == "in")
        )
    )
    for row in phone_rows:
        wid = wid_of(row.phone)
        seen[wid] = seen.get(wid, False) or bool(row.read)
    inst_rows = await tx.conn.execute(
        select(messages.c.instance_id, messages.c.status).where(
            (messages.c.id_message == id_message)
            & (messages.c.chat_id == group_id)
            & (messages.c.direction == "in")
        )
    )
    for row in inst_rows:
        rec = await channel.core.instances.get(int(row.instance_id), tx.conn)
        if rec is None or not rec.wid:
            continue
        seen[rec.wid] = seen.get(rec.wid, False) or row.status == "read"
    seen.pop(author, None)
    if seen and all(seen.values()):
        await channel._report_status(tx, author, group_id, id_message, Status.READ)

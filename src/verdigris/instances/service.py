"""Instance actions: create, settings, state machine, linking (QR / pairing code), tokens.

Every state change of an instance happens in a function of this module, inside one transaction,
and emits its notification there.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import sys
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import bindparam, func, insert, select, update

from verdigris.instances import settings as catalogue
from verdigris.instances.models import instance_state_history, instances, workspace_meta
from verdigris.messaging import lifecycle
from verdigris.messaging.notifications import emit, socket_event, state_event
from verdigris.store.changes import INSTANCE, changed
from verdigris.store.clock import now_ms
from verdigris.store.direct import Direct

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from verdigris.core import Core, Tx

# Instance states (the wire vocabulary of getStateInstance).
NOT_AUTHORIZED = "notAuthorized"
STARTING = "starting"
AUTHORIZED = "authorized"
BLOCKED = "blocked"
YELLOW_CARD = "yellowCard"
SLEEP_MODE = "sleepMode"
STATES = (NOT_AUTHORIZED, STARTING, AUTHORIZED, BLOCKED, YELLOW_CARD, SLEEP_MODE)


def is_online(state: str) -> bool:
    """The socket status (getStatusInstance, statusInstanceChanged): open only while authorized."""
    return state == AUTHORIZED


FIRST_INSTANCE_ID = 7700000001
PAIRING_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class InstanceError(Exception):
    """An action that the instance's current state does not allow."""


@dataclass(slots=True)
class InstanceRecord:
    """What the hot path needs to know about an instance (cached in memory)."""

    id: int
    token: str
    account_id: int | None
    state: str
    wid: str
    channel: str
    name: str
    settings: dict[str, Any] = field(default_factory=dict)
    created_ms: int = 0

    @property
    def phone(self) -> str:
        return self.wid.split("@", 1)[0] if self.wid else ""


def _settings(text: str) -> dict[str, Any]:
    """Parse stored settings, sharing the short string values ("yes", "no", "") between records.

    Nearly every value is one of a few short strings; sharing them halves what a cached instance
    costs (about 2.6 KB → 1.4 KB per record, measured with tracemalloc).
    """
    return {
        key: sys.intern(value) if type(value) is str and len(value) <= 64 else value
        for key, value in orjson.loads(text).items()
    }


def _record(row: Any) -> InstanceRecord:
    return InstanceRecord(
        id=int(row.id),
        token=row.token,
        account_id=row.account_id,
        state=row.state,
        wid=row.wid,
        channel=row.channel,
        name=row.name,
        settings=_settings(row.settings),
        created_ms=int(row.created_ms),
    )


# Hot-path statements, built once: building a statement and its cache key costs more CPU than
# SQLite takes to answer these lookups (find_by_wid runs four times per sandbox delivery).
_BY_ID = select(instances).where((instances.c.id == bindparam("id")) & instances.c.deleted_ms.is_(None))
# Instances linked to a sandbox account: an instance of another network with the same number (a
# WhatsApp Cloud API business number) is not a device of the sandbox phone.
_BY_WID = Direct(
    select(instances.c.id).where(
        (instances.c.wid == bindparam("wid"))
        & (instances.c.state != NOT_AUTHORIZED)
        & (instances.c.channel == "sandbox")
        & instances.c.deleted_ms.is_(None)
    )
)


# The compact index loaded at start: every instance's row as a tuple, in the order of _IndexRow.
_INDEX_COLUMNS = (
    instances.c.id,
    instances.c.token,
    instances.c.account_id,
    instances.c.state,
    instances.c.wid,
    instances.c.channel,
    instances.c.name,
    instances.c.settings,
    instances.c.created_ms,
)
_IndexRow = tuple[str, "int | None", str, str, str, str, str, int]
INDEX_PAGE = 5000
_SCALARS = (str, int, float, bool, type(None))
_INDEX_PAGE = (
    select(*_INDEX_COLUMNS)
    .where((instances.c.id > bindparam("after")) & instances.c.deleted_ms.is_(None))
    .order_by(instances.c.id)
    .limit(INDEX_PAGE)
)


class InstanceCache:
    """Instances by id, kept up to date by this module's actions.

    Two tiers. Records in use live in a bounded LRU (least recently used first out). Every other
    instance that existed at start is in the *index*: its row as a compact tuple (settings kept as
    their JSON text, shared between instances with the same settings; ~0.5 KB each), loaded once at
    start (:meth:`load_index`), so an instance's first request builds its record from memory
    instead of reading the store. An index entry is never updated, only taken: on first use it
    becomes the LRU record (which every change goes through from then on), and a change from another
    process (:meth:`refresh`) or :meth:`forget` drops it, so the next use reads the store. An
    instance that falls out of the LRU is read from the store again when next used.
    """

    def __init__(self, core: Core, capacity: int = 50_000) -> None:
        self._core = core
        self._items: OrderedDict[int, InstanceRecord] = OrderedDict()
        self._capacity = capacity
        self._index: dict[int, _IndexRow] = {}
        self._common: dict[str, dict[str, Any]] = {}  # parsed settings texts (see _parsed)
        # Counts changes applied from other processes (store/changes.py); a record read before
        # one of them may be stale, so it is not cached.
        self._generation = 0

    async def load_index(self) -> int:
        """Load every instance's row into the index (at start, after the change feed has taken its
        position in the log, so any change committed after this read is applied on top of it)."""
        generation = self._generation
        shared: dict[str, str] = {}
        index: dict[int, _IndexRow] = {}
        last = 0
        while True:  # in pages: never every row of a large store in memory at once
            async with self._core.read() as conn:
                rows = (await conn.execute(_INDEX_PAGE, {"after": last})).all()
            for row in rows:
                text = row.settings
                index[int(row.id)] = (
                    row.token,
                    row.account_id,
                    sys.intern(row.state),
                    row.wid,
                    sys.intern(row.channel),
                    row.name,
                    shared.setdefault(text, text),
                    int(row.created_ms),
                )
            if len(rows) < INDEX_PAGE:
                break
            last = int(rows[-1].id)
        if generation != self._generation:
            return 0  # a change from another process arrived meanwhile: no index (reads as before)
        for instance_id in self._items:
            index.pop(instance_id, None)  # in use already: the record is the truth
        self._index = index
        return len(index)

    async def get(self, instance_id: int, conn: AsyncConnection | None = None) -> InstanceRecord | None:
        """The instance, from memory or the database (inside a transaction, ``conn`` may be its
        connection; ``Core.read`` does the same on its own)."""
        rec = self._items.get(instance_id)
        if rec is not None:
            self._items.move_to_end(instance_id)
            return rec
        packed = self._index.pop(instance_id, None)
        if packed is not None:
            token, account_id, state, wid, channel, name, text, created = packed
            rec = InstanceRecord(
                instance_id, token, account_id, state, wid, channel, name, self._parsed(text), created
            )
            self.put(rec)
            return rec
        generation = self._generation
        if conn is not None:
            row = (await conn.execute(_BY_ID, {"id": instance_id})).first()
        else:
            async with self._core.read() as own:
                row = (await own.execute(_BY_ID, {"id": instance_id})).first()
        if row is None:
            return None
        cached = self._items.get(instance_id)
        if cached is not None:
            return cached  # loaded meanwhile by another call: one record per instance
        rec = _record(row)
        if generation == self._generation:
            # Not when another process's change was applied during the read: the row read may
            # predate it (the record is good for this call, the next one reads again).
            self.put(rec)
        return rec

    def _parsed(self, text: str) -> dict[str, Any]:
        """Settings of an index entry: a copy of the parse of the same text when it is common
        (most idle instances share their settings), so each record still has a dict of its own."""
        parsed = self._common.get(text)
        if parsed is None:
            parsed = _settings(text)
            if len(self._common) < 64 and all(type(v) in _SCALARS for v in parsed.values()):
                self._common[text] = parsed
            else:
                return parsed
        return dict(parsed)

    async def refresh(self, instance_id: int, conn: AsyncConnection) -> None:
        """Another process changed the instance: update the cached record in place (whoever holds
        it sees the change), or drop it when the instance is gone."""
        self._generation += 1
        self._index.pop(instance_id, None)
        rec = self._items.get(instance_id)
        if rec is None:
            return
        row = (await conn.execute(_BY_ID, {"id": instance_id})).first()
        if row is None:
            self.forget(instance_id)
            self._core.sender.forget(instance_id)
            self._core.licensing.forget(instance_id)  # its unflushed counts are still written
            return
        fresh = _record(row)
        webhook_before = (rec.settings.get("webhookUrl"), rec.settings.get("webhookUrlToken"))
        for name in ("token", "account_id", "state", "wid", "channel", "name", "settings"):
            setattr(rec, name, getattr(fresh, name))
        lifecycle.wake(self._core, rec)  # the gap, the state or the owner's measure may have changed
        if webhook_before != (rec.settings.get("webhookUrl"), rec.settings.get("webhookUrlToken")):
            self._core.dispatcher.wake(rec.id)

    def clear(self) -> None:
        self._generation += 1
        self._items.clear()
        self._index.clear()

    def put(self, rec: InstanceRecord) -> None:
        self._items[rec.id] = rec
        self._items.move_to_end(rec.id)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def peek(self, instance_id: int) -> InstanceRecord | None:
        """The cached record, if it is in memory (no query, no reordering)."""
        return self._items.get(instance_id)

    def forget(self, instance_id: int) -> None:
        self._items.pop(instance_id, None)
        self._index.pop(instance_id, None)

    def __len__(self) -> int:
        return len(self._items)


# --- workspace facts -------------------------------------------------------------------------


async def meta_get(conn: AsyncConnection, key: str) -> str | None:
    return await conn.scalar(select(workspace_meta.c.value).where(workspace_meta.c.key == key))


async def meta_set(conn: AsyncConnection, key: str, value: str) -> None:
    if await meta_get(conn, key) is None:
        await conn.execute(insert(workspace_meta).values(key=key, value=value))
    else:
        await conn.execute(update(workspace_meta).where(workspace_meta.c.key == key).values(value=value))


async def workspace_value(core: Core, key: str, make: Callable[[], str]) -> str:
    """A per-workspace value kept in ``workspace_meta`` (a secret): created with ``make`` on first
    use, then read from ``core.secrets``."""
    cached = core.secrets.get(key)
    if cached is not None:
        return cached
    async with core.tx() as tx:
        value = await meta_get(tx.conn, key)
        if value is None:
            value = make()
            await meta_set(tx.conn, key, value)
    core.secrets[key] = value
    return value


async def workspace_secret(core: Core) -> bytes:
    """A per-workspace random secret (signs QR payloads); created on first use."""
    return bytes.fromhex(await workspace_value(core, "secret", lambda: secrets.token_hex(32)))


# --- create and read -------------------------------------------------------------------------


def new_token() -> str:
    """50 lowercase hex characters, the shape GREEN-API tokens have."""
    return secrets.token_hex(25)


async def create(
    core: Core,
    *,
    account_id: int | None,
    instance_id: int | None = None,
    token: str | None = None,
    name: str = "",
    channel: str = "sandbox",
    settings: dict[str, Any] | None = None,
) -> InstanceRecord:
    values = catalogue.defaults(core.settings.clamp_send_delay(core.settings.send_delay_default_ms))
    if settings:
        values.update(settings)
    created = now_ms()
    async with core.tx() as tx:
        if instance_id is None:
            top = await tx.conn.scalar(
                select(func.max(instances.c.id)).where(instances.c.id >= FIRST_INSTANCE_ID)
            )
            instance_id = int(top) + 1 if top else FIRST_INSTANCE_ID
        elif await tx.conn.scalar(select(instances.c.id).where(instances.c.id == instance_id)) is not None:
            raise InstanceError(f"instance {instance_id} already exists")
        rec = InstanceRecord(
            id=instance_id,
            token=token or new_token(),
            account_id=account_id,
            state=NOT_AUTHORIZED,
            wid="",
            channel=channel,
            name=name,
            settings=values,
            created_ms=created,
        )
        await tx.conn.execute(
            insert(instances).values(
                id=rec.id,
                account_id=account_id,
                token=rec.token,
                name=name,
                channel=channel,
                state=rec.state,
                wid="",
                settings=orjson.dumps(values).decode(),
                created_ms=created,
            )
        )
        await tx.conn.execute(
            insert(instance_state_history).values(instance_id=rec.id, state=rec.state, wid="", at_ms=created)
        )
    core.instances.put(rec)
    return rec


async def list_for_account(core: Core, account_id: int | None) -> list[InstanceRecord]:
    query = select(instances).where(instances.c.deleted_ms.is_(None)).order_by(instances.c.id)
    if account_id is not None:
        query = query.where(instances.c.account_id == account_id)
    async with core.read() as conn:
        rows = (await conn.execute(query)).all()
    return [_record(r) for r in rows]


async def list_with_deleted(core: Core, account_id: int, deleted_since_ms: int) -> list[dict[str, Any]]:
    """Rows of an account's instances, including those deleted since ``deleted_since_ms``."""
    query = (
        select(instances)
        .where(
            (instances.c.account_id == account_id)
            & (instances.c.deleted_ms.is_(None) | (instances.c.deleted_ms >= deleted_since_ms))
        )
        .order_by(instances.c.id)
    )
    async with core.read() as conn:
        rows = (await conn.execute(query)).all()
    return [dict(r._mapping) for r in rows]


async def find_by_wid(conn: AsyncConnection, wid: str) -> list[int]:
    """Ids of the authorized sandbox instances linked to ``wid`` (the network routes messages to them)."""
    rows = await _BY_WID.run(conn, {"wid": wid})
    return [int(r[0]) for r in rows]


# --- settings --------------------------------------------------------------------------------


async def update_settings(core: Core, rec: InstanceRecord, changes: dict[str, Any]) -> InstanceRecord:
    """Apply a partial settings change at once. ``changes`` is already validated by the face."""
    merged = {**rec.settings, **changes}
    if "delaySendMessagesMilliseconds" in changes:
        merged["delaySendMessagesMilliseconds"] = core.settings.clamp_send_delay(
            int(changes["delaySendMessagesMilliseconds"])
        )
    async with core.tx() as tx:
        await tx.conn.execute(
            update(instances).where(instances.c.id == rec.id).values(settings=orjson.dumps(merged).decode())
        )
        changed(tx, INSTANCE, rec.id)
    rec.settings = merged
    lifecycle.wake(core, rec)  # the gap may have changed
    if "webhookUrl" in changes or "webhookUrlToken" in changes:
        core.hub.notify(rec.id)  # the queue now goes to (or stops going to) a webhook
    return rec


# --- state machine ---------------------------------------------------------------------------


async def set_state(tx: Tx, rec: InstanceRecord, state: str, wid: str | None = None) -> None:
    """Move the instance to ``state`` (and link it to ``wid`` when given); emits stateInstanceChanged,
    then statusInstanceChanged when the socket opens or closes with it (link, reboot, logout)."""
    assert state in STATES, state
    at = now_ms()
    new_wid = rec.wid if wid is None else wid
    if state == rec.state and new_wid == rec.wid:
        return
    was_online = is_online(rec.state)
    await tx.conn.execute(
        update(instances).where(instances.c.id == rec.id).values(state=state, wid=new_wid, pairing_code=None)
    )
    await tx.conn.execute(
        insert(instance_state_history).values(instance_id=rec.id, state=state, wid=new_wid, at_ms=at)
    )
    changed(tx, INSTANCE, rec.id)
    rec.state = state
    rec.wid = new_wid
    tx.memo.clear()  # lookups of linked instances made earlier in this transaction are stale
    await emit(tx, rec, state_event(state, at))
    if is_online(state) != was_online:
        await emit(tx, rec, socket_event(is_online(state), at))
    if state == AUTHORIZED:
        lifecycle.wake_after(tx, rec)


async def set_channel(tx: Tx, rec: InstanceRecord, channel: str) -> None:
    """Connect the instance through another messenger network (``core.channels``' key); the
    cached record switches once ``tx`` commits."""
    await tx.conn.execute(update(instances).where(instances.c.id == rec.id).values(channel=channel))
    changed(tx, INSTANCE, rec.id)

    def switch() -> None:
        rec.channel = channel

    tx.on_commit(switch)


async def state_history(core: Core, rec: InstanceRecord, count: int) -> list[dict[str, Any]]:
    async with core.read() as conn:
        rows = (
            await conn.execute(
                select(instance_state_history)
                .where(instance_state_history.c.instance_id == rec.id)
                .order_by(instance_state_history.c.id.desc())
                .limit(count)
            )
        ).all()
    return [{"state": r.state, "at_ms": int(r.at_ms), "wid": r.wid} for r in rows]


async def link(core: Core, rec: InstanceRecord, wid: str, channel: str = "sandbox") -> None:
    """The account ``wid`` of the ``channel`` network has authorized this instance as a linked
    device (the channel reports it, after a QR code or a pairing code was used)."""
    if rec.channel != channel:
        raise InstanceError(
            f"the instance connects through the {rec.channel} network, not by linking a {channel} account"
        )
    if rec.state == AUTHORIZED:
        raise InstanceError("instance account already authorized")
    async with core.tx() as tx:
        await set_state(tx, rec, STARTING, wid)
        await set_state(tx, rec, AUTHORIZED, wid)


async def logout(core: Core, rec: InstanceRecord) -> None:
    """Unlink the instance: its channel ends the session on the network first (outside any
    transaction), then the instance is ``notAuthorized``."""
    channel = core.channels.get(rec.channel)
    if channel is not None:
        await channel.logout(rec)
    async with core.tx() as tx:
        await set_state(tx, rec, NOT_AUTHORIZED, "")


async def reboot(core: Core, rec: InstanceRecord) -> None:
    """Restart the instance: ``starting`` for a moment, then back to where it was."""
    back_to = rec.state if rec.state != STARTING else AUTHORIZED if rec.wid else NOT_AUTHORIZED
    async with core.tx() as tx:
        await set_state(tx, rec, STARTING)
    channel = core.channels.get(rec.channel)
    if channel is not None:
        await channel.reboot(rec)  # outside any transaction: it may reconnect to the network

    async def finish() -> None:
        if rec.state != STARTING:
            return
        async with core.tx() as tx:
            await set_state(tx, rec, back_to)

    core.timers.schedule(("reboot", rec.id), now_ms() + int(core.settings.reboot_seconds * 1000), finish)


async def rotate_token(core: Core, rec: InstanceRecord) -> str:
    async with core.tx() as tx:
        token = await replace_token(tx, rec)
    return token


async def replace_token(tx: Tx, rec: InstanceRecord) -> str:
    """Give the instance a new token inside ``tx``; the cached record switches once it commits."""
    token = new_token()
    await tx.conn.execute(update(instances).where(instances.c.id == rec.id).values(token=token))
    changed(tx, INSTANCE, rec.id)

    def switch() -> None:
        rec.token = token

    tx.on_commit(switch)
    return token


async def delete(core: Core, rec: InstanceRecord) -> None:
    async with core.tx() as tx:
        await tx.conn.execute(update(instances).where(instances.c.id == rec.id).values(deleted_ms=now_ms()))
        changed(tx, INSTANCE, rec.id)
        channel = core.channels.get(rec.channel)
        if channel is not None:
            await channel.release(tx, rec)  # credentials and other per-instance state of the network
    core.instances.forget(rec.id)
    core.sender.forget(rec.id)


async def deleted_token(core: Core, instance_id: int) -> str | None:
    """The token of a deleted instance (the router answers it ``Instance is deleted``), else None."""
    async with core.read() as conn:
        token = await conn.scalar(
            select(instances.c.token).where(
                (instances.c.id == instance_id) & instances.c.deleted_ms.isnot(None)
            )
        )
    return None if token is None else str(token)


# --- linking: QR codes and pairing codes ---------------------------------------------------------

QR_PREFIX = "verdigris-link"


def _qr_mac(secret: bytes, instance_id: int, bucket: int) -> str:
    digest = hmac.new(secret, f"qr:{instance_id}:{bucket}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:15]).decode()


async def qr_payload(core: Core, rec: InstanceRecord) -> str:
    """The text inside the current QR code; it changes every ``qr_rotate_seconds``."""
    bucket = now_ms() // (core.settings.qr_rotate_seconds * 1000)
    secret = await workspace_secret(core)
    return f"{QR_PREFIX}:{rec.id}:{bucket}:{_qr_mac(secret, rec.id, bucket)}"


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 18


async def instance_for_qr(core: Core, payload: str) -> InstanceRecord:
    """The instance a scanned QR payload belongs to, if it is current (this or the last period)."""
    parts = payload.strip().split(":")
    if len(parts) != 4 or parts[0] != QR_PREFIX or not _digits(parts[1]) or not _digits(parts[2]):
        raise InstanceError("not a Verdigris QR code")
    instance_id, bucket = int(parts[1]), int(parts[2])
    now_bucket = now_ms() // (core.settings.qr_rotate_seconds * 1000)
    secret = await workspace_secret(core)
    if bucket not in (now_bucket, now_bucket - 1) or not hmac.compare_digest(
        parts[3], _qr_mac(secret, instance_id, bucket)
    ):
        raise InstanceError("QR code expired or invalid: show a fresh one")
    rec = await core.instances.get(instance_id)
    if rec is None:
        raise InstanceError("QR code expired or invalid: show a fresh one")
    return rec


async def request_pairing_code(core: Core, rec: InstanceRecord, phone: str) -> str:
    """Issue the 8-character code the owner of ``phone`` types in to link this instance."""
    if rec.state == AUTHORIZED:
        raise InstanceError("instance account already authorized, logout first")
    code = "".join(secrets.choice(PAIRING_ALPHABET) for _ in range(8))
    expires = now_ms() + core.settings.pairing_code_seconds * 1000
    async with core.tx() as tx:
        await tx.conn.execute(
            update(instances)
            .where(instances.c.id == rec.id)
            .values(pairing_code=code, pairing_phone=phone, pairing_expires_ms=expires)
        )
    return code


async def instance_for_pairing_code(core: Core, code: str, phone: str) -> InstanceRecord:
    normalized = code.replace("-", "").replace(" ", "").upper()
    async with core.read() as conn:
        row = (
            await conn.execute(
                select(instances.c.id, instances.c.pairing_phone, instances.c.pairing_expires_ms).where(
                    (instances.c.pairing_code == normalized) & instances.c.deleted_ms.is_(None)
                )
            )
        ).first()
    if row is None or row.pairing_phone != phone or int(row.pairing_expires_ms or 0) < now_ms():
        raise InstanceError("pairing code is wrong or expired")
    rec = await core.instances.get(int(row.id))
    if rec is None:
        raise InstanceError("pairing code is wrong or expired")
    return rec

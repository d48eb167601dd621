"""The Cloud API inbox: webhook payloads accepted by routes.py become journal rows and notifications.

The webhook answers Meta as soon as the payload is stored (``cloud_inbox``, one row per ``value``
object), so a slow file download never makes Meta wait or retry. This worker then applies each
instance's rows in the order they arrived, one at a time:

1. files the messages carry are downloaded from the Graph API into this server's media store
   (a download that fails for the moment is tried again, with a growing pause, up to
   :data:`MAX_ATTEMPTS` times; after that the message is kept without its file);
2. in one transaction: each message not seen before (Meta may send a payload again) is recorded
   through ``messaging.incoming.receive`` (journal, hooks, correspondents quota, notification),
   each status moves its message forward (``outgoingMessageStatus``), and the inbox row goes.

Nothing is kept in memory between steps: a restart picks the remaining rows up (``start``). A
payload that fails to apply for another reason (a bug) is tried again a few times and then kept
aside in the table with ``attempts = MAX_ATTEMPTS`` and an error in the log, so it cannot block
the payloads after it.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from sqlalchemy import bindparam, delete, insert, select, update

from verdigris.channels.whatsapp_cloud import inbound, service
from verdigris.channels.whatsapp_cloud.graph import GraphError
from verdigris.channels.whatsapp_cloud.models import cloud_early_statuses, cloud_inbox
from verdigris.media.scan import ScannerUnavailable
from verdigris.media.service import EmptyFile, FileInfected, FileTooLarge, default_name
from verdigris.messaging import lifecycle, rich
from verdigris.messaging.content import file_content, quote_of, text_type
from verdigris.messaging.incoming import IncomingMessage, receive
from verdigris.messaging.models import messages
from verdigris.messaging.vocabulary import Status
from verdigris.store.clock import now_ms

if TYPE_CHECKING:
    from verdigris.channels.whatsapp_cloud.channel import CloudChannel
    from verdigris.core import Core, Tx
    from verdigris.instances.service import InstanceRecord

log = structlog.get_logger("verdigris.cloud")

MAX_ATTEMPTS = 6
RETRY_BASE_MS = 5_000
EARLY_STATUS_MS = 3600_000

_HEAD = (
    select(cloud_inbox)
    .where((cloud_inbox.c.instance_id == bindparam("instance_id")) & (cloud_inbox.c.attempts < MAX_ATTEMPTS))
    .order_by(cloud_inbox.c.id)
    .limit(1)
)
_MESSAGE = select(messages).where(
    (messages.c.instance_id == bindparam("instance_id")) & (messages.c.id_message == bindparam("id_message"))
)


class CloudInbox:
    def __init__(self, core: Core, channel: CloudChannel) -> None:
        self.core = core
        self.channel = channel
        self._busy: set[int] = set()
        self._again: set[int] = set()
        # No attempt before this time (ms) after a failed download, whatever wakes the instance.
        self._hold_until: dict[int, int] = {}

    async def accept(self, values: list[tuple[int, dict[str, Any]]]) -> None:
        """Store webhook ``value`` objects for their instances (committed before Meta is answered)."""
        now = now_ms()
        async with self.core.tx() as tx:
            await tx.conn.execute(
                insert(cloud_inbox),
                [
                    {"instance_id": instance_id, "body": orjson.dumps(value).decode(), "received_ms": now}
                    for instance_id, value in values
                ],
            )
            for instance_id in {instance_id for instance_id, _ in values}:
                tx.on_commit(partial(self.wake, instance_id))

    async def start(self) -> None:
        async with self.core.read() as conn:
            ids = (
                (
                    await conn.execute(
                        select(cloud_inbox.c.instance_id)
                        .where(cloud_inbox.c.attempts < MAX_ATTEMPTS)
                        .distinct()
                    )
                )
                .scalars()
                .all()
            )
        for instance_id in ids:
            self.wake(int(instance_id))
        await self.purge_early_statuses()

    def wake(self, instance_id: int, due_ms: int | None = None) -> None:
        due = max(due_ms or now_ms(), self._hold_until.get(instance_id, 0))
        self.core.timers.schedule(("cloud-inbox", instance_id), due, partial(self._run, instance_id))

    async def purge_early_statuses(self) -> None:
        """Forget statuses no send of this server claimed within an hour (hourly)."""
        async with self.core.tx() as tx:
            await tx.conn.execute(
                delete(cloud_early_statuses).where(
                    cloud_early_statuses.c.received_ms < now_ms() - EARLY_STATUS_MS
                )
            )
        self.core.timers.schedule(
            "cloud-early-statuses", now_ms() + EARLY_STATUS_MS, self.purge_early_statuses
        )

    async def _run(self, instance_id: int) -> None:
        if instance_id in self._busy:
            self._again.add(instance_id)
            return
        self._busy.add(instance_id)
        try:
            while await self._apply_head(instance_id):
                pass
        except Exception:
            # A payload this code cannot apply must not block the ones after it for ever: it is
            # tried again a few times, then kept aside in the table (attempts = MAX_ATTEMPTS).
            log.exception("Cloud API payload could not be applied", instance=instance_id)
            async with self.core.tx() as tx:
                head = (await tx.conn.execute(_HEAD, {"instance_id": instance_id})).first()
                if head is not None:
                    await tx.conn.execute(
                        update(cloud_inbox)
                        .where(cloud_inbox.c.id == head.id)
                        .values(attempts=head.attempts + 1)
                    )
            self.wake(instance_id, now_ms() + RETRY_BASE_MS)
        finally:
            self._busy.discard(instance_id)
            if instance_id in self._again:
                self._again.discard(instance_id)
                self.wake(instance_id)

    async def _apply_head(self, instance_id: int) -> bool:
        """Apply the instance's oldest inbox row; False when there is none (or it must wait)."""
        async with self.core.read() as conn:
            row = (await conn.execute(_HEAD, {"instance_id": instance_id})).first()
        if row is None:
            return False
        hold = self._hold_until.get(instance_id, 0)
        if now_ms() < hold:
            self.wake(instance_id, hold)
            return False
        self._hold_until.pop(instance_id, None)
        rec = await self.core.instances.get(instance_id)
        known = await service.account(self.core, instance_id)
        if rec is None or known is None or rec.channel != service.CHANNEL:
            # The instance was deleted or disconnected from the Cloud API since: nothing to apply to.
            async with self.core.tx() as tx:
                await tx.conn.execute(delete(cloud_inbox).where(cloud_inbox.c.id == row.id))
            return True
        value = inbound.parse_value(orjson.loads(row.body))
        for kind in value.skipped:
            log.warning("Cloud API message type not handled", instance=instance_id, type=kind)
        files: dict[str, dict[str, Any]] = {}
        for got in value.received:
            if got.media_id is None:
                continue
            async with self.core.read() as conn:
                if await self.channel.local_id_of(conn, rec.id, got.wamid) is not None:
                    continue  # Meta sent this payload again: the file is stored already
            try:
                files[got.wamid] = await self._download(rec, known, got)
            except GraphError as exc:
                if exc.retryable and row.attempts + 1 < MAX_ATTEMPTS:
                    await self._postpone(row, exc)
                    return False
                log.warning("Cloud API file not downloaded", instance=instance_id, error=exc.describe())
                files[got.wamid] = {}
        async with self.core.tx() as tx:
            removed = await tx.conn.execute(delete(cloud_inbox).where(cloud_inbox.c.id == row.id))
            if not removed.rowcount:
                return True  # another process applied it meanwhile
            for got in value.received:
                await self._receive(tx, rec, got, files.get(got.wamid))
            for change in value.statuses:
                await self._status(tx, rec, change)
        return True

    async def _postpone(self, row: Any, exc: GraphError) -> None:
        async with self.core.tx() as tx:
            await tx.conn.execute(
                update(cloud_inbox).where(cloud_inbox.c.id == row.id).values(attempts=row.attempts + 1)
            )
        delay = RETRY_BASE_MS * 2 ** int(row.attempts)
        log.info(
            "Cloud API file download postponed",
            instance=row.instance_id,
            error=exc.describe(),
            delay_ms=delay,
        )
        self._hold_until[int(row.instance_id)] = now_ms() + delay
        self.wake(int(row.instance_id))

    async def _download(
        self, rec: InstanceRecord, known: service.CloudAccount, got: inbound.Received
    ) -> dict[str, Any]:
        """Fetch a received file into the media store; the file fields of its content ({} if refused)."""
        media = self.core.media
        assert got.media_id is not None
        graph = self.channel.graph
        facts = await graph.media(known.credentials, got.media_id)
        mime = str(facts.get("mime_type") or got.content.get("mimeType") or "application/octet-stream")
        name = _bounded_name(str(got.content.get("fileName") or "")) or default_name(
            got.media_id[:40], mime.split(";")[0]
        )
        chunks = graph.download(known.credentials, str(facts["url"]), media.limit)
        try:
            record = await media.save(str(rec.id), chunks, file_name=name, mime_type=mime)
        except (FileTooLarge, EmptyFile, FileInfected, ScannerUnavailable) as exc:
            log.warning("Cloud API file not stored", instance=rec.id, reason=str(exc) or type(exc).__name__)
            return {}
        return {
            "file_name": record.file_name,
            "mime_type": record.mime_type,
            "download_url": media.url(record),
            "file_id": record.id,
            "jpeg_thumbnail": record.jpeg_thumbnail,
        }

    async def _quote(self, tx: Tx, rec: InstanceRecord, wamid: str) -> tuple[str, Any] | None:
        """The journal row of a message named by its wamid, with its id, if this instance has it."""
        id_message = await self.channel.local_id_of(tx.conn, rec.id, wamid)
        if id_message is None:
            return None
        row = (await tx.conn.execute(_MESSAGE, {"instance_id": rec.id, "id_message": id_message})).first()
        return None if row is None else (id_message, row)

    async def _receive(
        self, tx: Tx, rec: InstanceRecord, got: inbound.Received, stored: dict[str, Any] | None
    ) -> None:
        if await self.channel.local_id_of(tx.conn, rec.id, got.wamid) is not None:
            return  # Meta sent this payload again
        id_message = inbound.local_id(got.wamid)
        await self.channel.remember(tx, rec.id, got.wamid, id_message)
        chat = inbound.wid(got.sender)
        type_message, content = got.type_message, dict(got.content)
        if stored is not None:
            content = file_content(
                file_name=stored.get("file_name") or content.get("fileName", ""),
                mime_type=stored.get("mime_type") or content.get("mimeType", ""),
                caption=content.get("caption", ""),
                download_url=stored.get("download_url", ""),
                file_id=stored.get("file_id", ""),
                jpeg_thumbnail=stored.get("jpeg_thumbnail", ""),
            ) | {k: v for k, v in got.content.items() if k in ("isAnimated", "forwarded", "forwarding_score")}
        if got.quoted_wamid:
            found = await self._quote(tx, rec, got.quoted_wamid)
            if found is not None:
                quoted_id, row = found
                content["quoted"] = quote_of(
                    quoted_id, row.sender, row.type_message, orjson.loads(row.content)
                )
                if type_message in ("textMessage", "extendedTextMessage"):
                    type_message = text_type(content)
        if got.target_wamid is not None:
            found = await self._quote(tx, rec, got.target_wamid)
            if got.press is not None:
                if found is None:
                    log.warning("button press for a message this instance does not know", instance=rec.id)
                    return
                target_id, row = found
                target_type = "templateMessage" if got.template_press else row.type_message
                try:
                    type_message, content = rich.press(
                        target_id, row.sender, target_type, orjson.loads(row.content), got.press["id"]
                    )
                except ValueError:
                    # The choice is not one this server sent (a template's button defined at Meta):
                    # keep what the customer chose.
                    type_message = rich.RESPONSE_TYPE.get(target_type, "buttonsResponseMessage")
                    content = {
                        "target": {"id": target_id, "sender": row.sender, "type_message": target_type},
                        "buttonId": got.press["id"],
                        "buttonText": got.press["title"],
                    }
            else:  # a reaction
                if found is None:
                    log.warning("reaction to a message this instance does not know", instance=rec.id)
                    return
                target_id, row = found
                content = rich.reaction(str(content.get("text", "")), target_id, row.sender)
        read = await receive(
            tx,
            rec,
            IncomingMessage(
                id_message, chat, chat, got.sender_name, type_message, content, got.at_ms or now_ms()
            ),
        )
        if read:
            wamid = got.wamid
            tx.on_commit(lambda: self.channel.spawn(self.channel.tell_read(rec.id, wamid)))

    async def _status(self, tx: Tx, rec: InstanceRecord, change: inbound.StatusChange) -> None:
        id_message = await self.channel.local_id_of(tx.conn, rec.id, change.wamid)
        if id_message is None:
            # Not known (yet): the send that got this wamid may not have recorded it; kept a while.
            await tx.conn.execute(
                insert(cloud_early_statuses).values(
                    instance_id=rec.id,
                    wamid=change.wamid[:255],
                    status=change.status,
                    description=change.description,
                    at_ms=change.at_ms or now_ms(),
                    received_ms=now_ms(),
                )
            )
            return
        await self.apply_status(tx, rec, id_message, change.status, change.description, change.at_ms)

    async def apply_status(
        self, tx: Tx, rec: InstanceRecord, id_message: str, status: str, description: str, at_ms: int
    ) -> None:
        """Move a message the instance sent forward to ``status`` (never back)."""
        row = (
            await tx.conn.execute(
                _MESSAGE.where(messages.c.direction == "out"),
                {"instance_id": rec.id, "id_message": id_message},
            )
        ).first()
        if row is None:
            return
        await lifecycle.set_status(
            tx,
            rec,
            row.id,
            row.chat_id,
            id_message,
            Status(status),
            description,
            current=row.status,
            sent_by_api=bool(row.sent_by_api),
            at_ms=at_ms,
        )

    async def apply_early_statuses(self, tx: Tx, rec: InstanceRecord, wamid: str, id_message: str) -> None:
        """Statuses that arrived before the send recorded ``wamid``: apply them now, in order."""
        cond = (cloud_early_statuses.c.instance_id == rec.id) & (cloud_early_statuses.c.wamid == wamid)
        rows = (
            await tx.conn.execute(
                select(cloud_early_statuses).where(cond).order_by(cloud_early_statuses.c.id)
            )
        ).all()
        if not rows:
            return
        await tx.conn.execute(delete(cloud_early_statuses).where(cond))
        for row in rows:
            await self.apply_status(tx, rec, id_message, row.status, row.description, int(row.at_ms))


def _bounded_name(name: str, limit: int = 200) -> str:
    """A received file's name cut to ``limit`` characters, keeping its extension."""
    if len(name) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if dot and 0 < len(ext) <= 16:
        return stem[: limit - len(ext) - 1] + "." + ext
    return name[:limit]

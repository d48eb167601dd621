"""The WhatsApp Cloud API channel: sends an instance's queue through Meta's Graph API.

A remote channel (channels/base.py): the send worker claims a message and commits, then calls
:meth:`CloudChannel.transmit` with no transaction open. ``transmit`` uploads the message's file if
it has one, sends the message and records the outcome:

* accepted → ``sent`` (the wamid is kept in ``cloud_message_ids``; ``delivered`` and ``read``
  follow from the status webhooks, worker.py), plus ``outgoingAPIMessageReceived``;
* refused for this message (an invalid recipient, the 24-hour window closed, ...) → ``failed``
  with Meta's code and text as the description;
* refused for the moment (throughput limits, Meta's trouble, no answer) → back in the queue, tried
  again with a growing pause, ``failed`` after :data:`MAX_ATTEMPTS`;
* the token refused → back in the queue and the instance ``notAuthorized`` until it is connected
  again (service.py), so nothing is lost while the owner renews the token.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import bindparam, insert, select

from verdigris.channels.base import SERVER_SIDE, BaseChannel, ChannelUnsupported
from verdigris.channels.whatsapp_cloud import outbound, routes, service
from verdigris.channels.whatsapp_cloud.graph import NO_CODE, GraphClient, GraphError
from verdigris.channels.whatsapp_cloud.models import cloud_message_ids
from verdigris.channels.whatsapp_cloud.worker import CloudInbox
from verdigris.instances.settings import is_on
from verdigris.messaging import lifecycle
from verdigris.messaging.incoming import mark_chat_read, message_event
from verdigris.messaging.models import messages
from verdigris.messaging.vocabulary import FILE_TYPES, EventKind, Status
from verdigris.store.clock import now_ms

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from verdigris.core import Core, Tx
    from verdigris.instances.service import InstanceRecord
    from verdigris.messaging.service import OutgoingMessage, StoredMessage

log = structlog.get_logger("verdigris.cloud")

MAX_ATTEMPTS = 8
RETRY_BASE_MS = 2_000
RETRY_MAX_MS = 300_000

# The wire methods a Cloud API instance offers. Groups, statuses (stories), calls, polls, edits,
# deletions, forwarding and number checks have no Cloud API counterpart.
METHODS = SERVER_SIDE | {
    # sending
    "sendMessage",
    "sendLink",
    "sendLocation",
    "sendContact",
    "sendInteractiveButtonsReply",
    "sendButtons",
    "sendListMessage",
    "sendTemplate",
    "sendReaction",
    "sendFileByUpload",
    "sendFileByUrl",
    "uploadFile",
    "downloadFile",
}
_WHY = {
    "qr": "instances on the WhatsApp Cloud API are connected with Meta credentials in the personal area, not by QR code",
    "getAuthorizationCode": "instances on the WhatsApp Cloud API are connected with Meta credentials in the personal area",
    "checkWhatsapp": "the WhatsApp Cloud API cannot tell whether a number has WhatsApp; a message to a number without it ends 'failed'",
}

_WAMID = select(cloud_message_ids.c.wamid).where(
    (cloud_message_ids.c.instance_id == bindparam("instance_id"))
    & (cloud_message_ids.c.id_message == bindparam("id_message"))
)
_LOCAL_ID = select(cloud_message_ids.c.id_message).where(
    (cloud_message_ids.c.instance_id == bindparam("instance_id"))
    & (cloud_message_ids.c.wamid == bindparam("wamid"))
)
_INSERT_ID = insert(cloud_message_ids)


class CloudChannel(BaseChannel):
    name = service.CHANNEL
    title = "Cloud API"
    remote = True
    methods = METHODS

    def __init__(self, core: Core) -> None:
        super().__init__(core)
        self._graph: GraphClient | None = None
        self._attempts: dict[int, int] = {}  # row id → failed attempts so far (this process)
        self._tasks: set[asyncio.Task[None]] = set()
        self.inbox = CloudInbox(core, self)

    @property
    def graph(self) -> GraphClient:
        if self._graph is None:
            settings = self.core.settings
            self._graph = GraphClient(
                settings.cloud_graph_url, settings.cloud_api_version, settings.cloud_timeout_seconds
            )
        return self._graph

    async def start(self) -> None:
        await self.inbox.start()

    def routers(self) -> list[Any]:
        return [routes.build_router(self.core, self.inbox)]

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._graph is not None:
            await self._graph.close()
            self._graph = None

    def spawn(self, work: Any) -> None:
        """Run ``work`` (a coroutine) in the background, kept until it ends."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- the Channel interface ---------------------------------------------------------------

    def unsupported(self, method: str) -> str:
        why = _WHY.get(method, "the WhatsApp Cloud API has no such function")
        return f"{method} is not available for this instance: {why}"

    def refusal(self, rec: InstanceRecord, message: OutgoingMessage) -> str | None:
        return outbound.refusal(message.type_message, message.content, message.chat_id)

    async def has_account(self, rec: InstanceRecord, phone: str) -> bool:
        raise ChannelUnsupported(_WHY["checkWhatsapp"])

    async def release(self, tx: Tx, rec: InstanceRecord) -> None:
        await service.drop_credentials(tx, rec.id)

    @property
    def deadline_seconds(self) -> float:
        """The longest one transmit may take: an upload and a send, each within the call timeout,
        and room for reading the file."""
        return 4 * self.core.settings.cloud_timeout_seconds

    async def transmit(self, rec: InstanceRecord, message: StoredMessage) -> int | None:
        known = await service.account(self.core, rec.id)
        if known is None:
            await self._settle_failed(rec, message, "the instance has no WhatsApp Cloud API credentials")
            return None
        try:
            async with asyncio.timeout(self.deadline_seconds):
                body = await self._body(rec, known, message)
                wamid = await self.graph.send(known.credentials, body)
        except ChannelUnsupported as exc:
            await self._settle_failed(rec, message, str(exc))
            return None
        except GraphError as exc:
            return await self._settle_error(rec, message, exc)
        except TimeoutError:
            error = GraphError(0, NO_CODE, f"no answer within {self.deadline_seconds:.0f} s")
            return await self._settle_error(rec, message, error)
        except Exception as exc:  # a stored file gone missing, a database error, ...: not Meta's answer
            log.exception("Cloud API send failed", instance=rec.id, id_message=message.id_message)
            return await self._settle_error(
                rec, message, GraphError(0, NO_CODE, f"internal error: {exc!r}"[:300])
            )
        self._attempts.pop(message.row_id, None)
        # Meta has the message: record that, trying again if the database is busy, never by sending again.
        for attempt in range(3):
            try:
                await self._settle_sent(rec, message, wamid, known.verified_name)
                return None
            except Exception:
                log.exception(
                    "recording a sent message failed", instance=rec.id, id_message=message.id_message
                )
                await asyncio.sleep(0.5 * (attempt + 1))
        return None  # still pending: after a restart the message would be sent again (decision 0008)

    async def mark_read(self, tx: Tx, rec: InstanceRecord, chat_id: str, up_to: StoredMessage | None) -> int:
        """Mark the chat's incoming messages read here, and tell Meta after the commit (one call for
        the newest: the Cloud API marks the earlier ones of the chat read with it)."""
        rows = await mark_chat_read(tx, rec, chat_id, up_to)
        if not rows:
            return 0
        wamid = await self.wamid_of(tx.conn, rec.id, rows[-1].id_message)
        if wamid is not None:
            tx.on_commit(lambda: self.spawn(self.tell_read(rec.id, wamid)))
        return len(rows)

    # --- ids -----------------------------------------------------------------------------------

    @staticmethod
    async def wamid_of(conn: AsyncConnection, instance_id: int, id_message: str) -> str | None:
        found = await conn.scalar(_WAMID, {"instance_id": instance_id, "id_message": id_message})
        return None if found is None else str(found)

    @staticmethod
    async def local_id_of(conn: AsyncConnection, instance_id: int, wamid: str) -> str | None:
        found = await conn.scalar(_LOCAL_ID, {"instance_id": instance_id, "wamid": wamid})
        return None if found is None else str(found)

    @staticmethod
    async def remember(tx: Tx, instance_id: int, wamid: str, id_message: str) -> None:
        await tx.conn.execute(
            _INSERT_ID,
            {"instance_id": instance_id, "wamid": wamid, "id_message": id_message, "created_ms": now_ms()},
        )

    # --- sending -------------------------------------------------------------------------------

    async def _body(
        self, rec: InstanceRecord, known: service.CloudAccount, message: StoredMessage
    ) -> dict[str, Any]:
        content = message.content
        context = reaction = None
        async with self.core.read() as conn:
            quoted = content.get("quoted")
            if isinstance(quoted, dict) and quoted.get("id"):
                context = await self.wamid_of(conn, rec.id, str(quoted["id"]))
            if message.type_message == "reactionMessage":
                target = content.get("target") or {}
                reaction = await self.wamid_of(conn, rec.id, str(target.get("id", "")))
        media = None
        if message.type_message in FILE_TYPES:
            media = await self._upload(known, message)
        return outbound.message_body(
            message.type_message,
            content,
            message.chat_id,
            request=message.request,
            context_wamid=context,
            media=media,
            reaction_wamid=reaction,
        )

    async def _upload(self, known: service.CloudAccount, message: StoredMessage) -> tuple[str, str]:
        """Upload the message's stored file to Meta; returns (kind, media id)."""
        content = message.content
        media = self.core.media
        record = await media.get(str(content.get("fileId", "")))
        if record is None:
            raise ChannelUnsupported("the file of this message is no longer stored on this server")
        if record.size > outbound.SIZE_LIMITS["document"]:
            raise ChannelUnsupported(
                f"the file has {record.size} bytes; the WhatsApp Cloud API takes at most "
                f"{outbound.SIZE_LIMITS['document']}"
            )
        try:
            data = b"".join([chunk async for chunk in media.store.read(record.key)])
        except OSError as exc:
            raise ChannelUnsupported(
                f"the file of this message could not be read on this server ({exc.strerror})"
            ) from None
        kind = outbound.media_kind(message.type_message, record.mime_type, record.size)
        media_id = await self.graph.upload(known.credentials, data, record.file_name, record.mime_type)
        return kind, media_id

    async def _settle_sent(self, rec: InstanceRecord, message: StoredMessage, wamid: str, name: str) -> None:
        now = now_ms()
        async with self.core.tx() as tx:
            # Also from "queued": had the claim been taken back meanwhile, the message must not go twice.
            api_message = message_event(
                EventKind.OUTGOING_API_MESSAGE,
                message.id_message,
                message.type_message,
                message.content,
                message.chat_id,
                rec.wid,
                name,
                now,
            )
            settled = await lifecycle.set_status(
                tx,
                rec,
                message.row_id,
                message.chat_id,
                message.id_message,
                Status.SENT,
                expect=(Status.PENDING, Status.QUEUED),
                columns={"sender": rec.wid, "sender_name": name},
                at_ms=now,
                announce=api_message,
            )
            if not settled:
                log.warning("sent message no longer claimed", instance=rec.id, id_message=message.id_message)
            await self.remember(tx, rec.id, wamid, message.id_message)
            await self.inbox.apply_early_statuses(tx, rec, wamid, message.id_message)
            if is_on(rec.settings, "markIncomingMessagesReadedOnReply"):
                await self.mark_read(tx, rec, message.chat_id, None)

    async def _settle_failed(self, rec: InstanceRecord, message: StoredMessage, description: str) -> None:
        self._attempts.pop(message.row_id, None)
        async with self.core.tx() as tx:
            await lifecycle.set_status(
                tx,
                rec,
                message.row_id,
                message.chat_id,
                message.id_message,
                Status.FAILED,
                description[:400],
                expect=(Status.PENDING,),
            )

    async def _requeue(self, tx: Tx, message: StoredMessage) -> None:
        await lifecycle.requeue(tx, messages.c.id == message.row_id)

    async def _settle_error(self, rec: InstanceRecord, message: StoredMessage, exc: GraphError) -> int | None:
        reason = exc.describe()
        if exc.credentials_refused:
            log.warning("the Graph API refused the access token", instance=rec.id, error=reason)
            async with self.core.tx() as tx:
                await self._requeue(tx, message)
                await service.credentials_refused(tx, rec, reason)
            return now_ms() + 1000  # not sent: the instance is not authorized until it is connected again
        attempts = self._attempts.get(message.row_id, 0) + 1
        if not exc.retryable or attempts >= MAX_ATTEMPTS:
            if exc.retryable:
                reason = f"gave up after {attempts} attempts: {reason}"
            await self._settle_failed(rec, message, reason)
            return None
        self._attempts[message.row_id] = attempts
        if len(self._attempts) > 10_000:
            self._attempts.clear()  # a bound; at worst a message gets a few more attempts
        async with self.core.tx() as tx:
            await self._requeue(tx, message)
        delay = min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (attempts - 1))
        log.info(
            "send postponed", instance=rec.id, id_message=message.id_message, error=reason, delay_ms=delay
        )
        return now_ms() + delay

    async def tell_read(self, instance_id: int, wamid: str) -> None:
        """Tell Meta the business read the message ``wamid`` (after the commit; refusals are logged)."""
        known = await service.account(self.core, instance_id)
        if known is None:
            return
        try:
            await self.graph.mark_read(known.credentials, wamid)
        except GraphError as exc:
            log.warning(
                "read mark not delivered to the Graph API", instance=instance_id, error=exc.describe()
            )

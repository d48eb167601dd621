"""Connecting instances through the WhatsApp Cloud API: the credentials, connect, forget.

An instance is connected by giving it a business phone number's Graph API credentials (the
phone number id and an access token from Meta's app dashboard) and the app's webhook secrets.
:func:`connect` asks the Graph API which number the credentials belong to; when it answers, the
instance's channel becomes ``whatsapp_cloud`` and its state ``authorized`` with that number as its
``wid``. If Meta later refuses the token (expired, revoked), the instance drops to
``notAuthorized`` with the reason kept, its queue waits, and :func:`connect` again (new token)
lets it go on. :func:`forget` removes the credentials and returns the instance to the sandbox.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select, update

from verdigris.channels.whatsapp_cloud.graph import Credentials, GraphError
from verdigris.channels.whatsapp_cloud.models import cloud_accounts, cloud_early_statuses, cloud_inbox
from verdigris.errors import ServiceError
from verdigris.instances import service as instances
from verdigris.messaging import lifecycle
from verdigris.messaging.models import messages
from verdigris.store.clock import now_ms

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from verdigris.channels.whatsapp_cloud.channel import CloudChannel
    from verdigris.core import Core, Tx
    from verdigris.instances.service import InstanceRecord

CHANNEL = "whatsapp_cloud"
WEBHOOK_PATH = "/channels/whatsapp-cloud/webhook"
_GRAPH_ID = re.compile(r"^[0-9]{1,32}$")
_SECRET = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces


class CloudError(ServiceError):
    """A connection that cannot be made (bad credentials, a number already connected elsewhere)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(status, message)


@dataclass(slots=True)
class CloudAccount:
    instance_id: int
    phone_number_id: str
    access_token: str
    app_secret: str
    verify_token: str
    display_phone_number: str
    verified_name: str
    last_error: str

    @property
    def credentials(self) -> Credentials:
        return Credentials(self.phone_number_id, self.access_token)


def _account(row: Any) -> CloudAccount:
    return CloudAccount(
        instance_id=int(row.instance_id),
        phone_number_id=row.phone_number_id,
        access_token=row.access_token,
        app_secret=row.app_secret,
        verify_token=row.verify_token,
        display_phone_number=row.display_phone_number,
        verified_name=row.verified_name,
        last_error=row.last_error,
    )


async def account_of(conn: AsyncConnection, instance_id: int) -> CloudAccount | None:
    row = (
        await conn.execute(select(cloud_accounts).where(cloud_accounts.c.instance_id == instance_id))
    ).first()
    return None if row is None else _account(row)


async def account(core: Core, instance_id: int) -> CloudAccount | None:
    async with core.read() as conn:
        return await account_of(conn, instance_id)


async def accounts_for_numbers(core: Core, phone_number_ids: set[str]) -> dict[str, CloudAccount]:
    """The accounts of these phone number ids (the ones a webhook payload names), in one query."""
    if not phone_number_ids:
        return {}
    async with core.read() as conn:
        rows = (
            await conn.execute(
                select(cloud_accounts).where(cloud_accounts.c.phone_number_id.in_(sorted(phone_number_ids)))
            )
        ).all()
    return {row.phone_number_id: _account(row) for row in rows}


async def verify_token_known(core: Core, token: str) -> bool:
    """Whether some connected instance expects this ``hub.verify_token`` (webhook verification)."""
    async with core.read() as conn:
        found = await conn.scalar(
            select(cloud_accounts.c.instance_id).where(cloud_accounts.c.verify_token == token).limit(1)
        )
    return found is not None


def _digits(display: str) -> str:
    return "".join(ch for ch in display if ch.isascii() and ch.isdigit())


def _check(phone_number_id: str, access_token: str, app_secret: str, verify_token: str) -> None:
    if not _GRAPH_ID.match(phone_number_id):
        raise CloudError("the phone number id is the number's id in the Graph API: digits only")
    if not access_token or len(access_token) > 4000 or not access_token.isascii() or " " in access_token:
        raise CloudError("the access token is missing or malformed (printable characters, no spaces)")
    if not _SECRET.match(app_secret):
        raise CloudError("the app secret is missing or malformed (1 to 200 printable characters, no spaces)")
    if not _SECRET.match(verify_token):
        raise CloudError(
            "the verify token is missing or malformed (1 to 200 printable characters, no spaces)"
        )


def _channel(core: Core) -> CloudChannel:
    channel = core.channels.get(CHANNEL)
    if channel is None:
        raise CloudError("the WhatsApp Cloud API channel is switched off on this server", 409)
    return channel  # type: ignore[return-value]


async def connect(
    core: Core,
    rec: InstanceRecord,
    *,
    phone_number_id: str,
    access_token: str,
    app_secret: str,
    verify_token: str,
) -> CloudAccount:
    """Check the credentials with the Graph API and connect the instance through them."""
    phone_number_id = phone_number_id.strip()
    access_token = access_token.strip()
    _check(phone_number_id, access_token, app_secret, verify_token)
    if rec.channel != CHANNEL and rec.state != instances.NOT_AUTHORIZED:
        raise CloudError("the instance is linked to a phone of the sandbox network: log it out first", 409)
    other = (await accounts_for_numbers(core, {phone_number_id})).get(phone_number_id)
    if other is not None and other.instance_id != rec.id:
        # Which instance (perhaps another customer's) is not said.
        raise CloudError("this phone number is already connected to another instance", 409)
    try:
        number = await _channel(core).graph.phone_number(Credentials(phone_number_id, access_token))
    except GraphError as exc:
        raise CloudError(f"the Graph API refused these credentials: {exc.describe()}") from None
    digits = _digits(str(number.get("display_phone_number", "")))
    if not 7 <= len(digits) <= 15:
        raise CloudError("the Graph API named no usable phone number for this phone number id")
    values = {
        "phone_number_id": phone_number_id,
        "access_token": access_token,
        "app_secret": app_secret,
        "verify_token": verify_token,
        "display_phone_number": str(number.get("display_phone_number", ""))[:32],
        "verified_name": str(number.get("verified_name", ""))[:200],
        "last_error": "",
        "updated_ms": now_ms(),
    }
    async with core.tx() as tx:
        if await account_of(tx.conn, rec.id) is None:
            await tx.conn.execute(insert(cloud_accounts).values(instance_id=rec.id, **values))
        else:
            await tx.conn.execute(
                update(cloud_accounts).where(cloud_accounts.c.instance_id == rec.id).values(**values)
            )
        await instances.set_channel(tx, rec, CHANNEL)
        if rec.state == instances.AUTHORIZED and rec.wid != f"{digits}@c.us":
            await instances.set_state(tx, rec, instances.NOT_AUTHORIZED, "")
        if rec.state != instances.AUTHORIZED:
            await instances.set_state(tx, rec, instances.STARTING, f"{digits}@c.us")
            await instances.set_state(tx, rec, instances.AUTHORIZED)
        found = await account_of(tx.conn, rec.id)
    assert found is not None
    return found


async def reconnect(core: Core, rec: InstanceRecord) -> CloudAccount:
    """Connect again with the stored credentials (after Meta refused them for a while, say)."""
    known = await account(core, rec.id)
    if known is None:
        raise CloudError("this instance has no WhatsApp Cloud API credentials", 404)
    return await connect(
        core,
        rec,
        phone_number_id=known.phone_number_id,
        access_token=known.access_token,
        app_secret=known.app_secret,
        verify_token=known.verify_token,
    )


async def drop_credentials(tx: Tx, instance_id: int) -> bool:
    """Delete an instance's credentials and what waits for it from Meta; False if it had none."""
    removed = await tx.conn.execute(delete(cloud_accounts).where(cloud_accounts.c.instance_id == instance_id))
    await tx.conn.execute(delete(cloud_inbox).where(cloud_inbox.c.instance_id == instance_id))
    await tx.conn.execute(
        delete(cloud_early_statuses).where(cloud_early_statuses.c.instance_id == instance_id)
    )
    return bool(removed.rowcount)


async def forget(core: Core, rec: InstanceRecord) -> None:
    """Remove the credentials: the instance is not authorized and belongs to the sandbox again.
    A send caught mid-way goes back into the queue (the sandbox would deliver it once linked)."""
    async with core.tx() as tx:
        if not await drop_credentials(tx, rec.id):
            raise CloudError("this instance has no WhatsApp Cloud API credentials", 404)
        await lifecycle.requeue(
            tx, (messages.c.instance_id == rec.id) & (messages.c.direction == "out") & messages.c.sent_by_api
        )
        await instances.set_state(tx, rec, instances.NOT_AUTHORIZED, "")
        await instances.set_channel(tx, rec, "sandbox")


async def credentials_refused(tx: Tx, rec: InstanceRecord, reason: str) -> None:
    """Meta refused the stored token: keep the reason, stop the instance (its queue waits)."""
    await tx.conn.execute(
        update(cloud_accounts)
        .where(cloud_accounts.c.instance_id == rec.id)
        .values(last_error=reason[:400], updated_ms=now_ms())
    )
    if rec.state == instances.AUTHORIZED:
        await instances.set_state(tx, rec, instances.NOT_AUTHORIZED)

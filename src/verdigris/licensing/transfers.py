"""Transfer of rights (T-08): request, operator approval, acceptance by the receiver."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import delete, insert, select, update

from verdigris.accounts.models import accounts
from verdigris.instances.models import instances
from verdigris.instances.service import replace_token
from verdigris.licensing.models import (
    licenses,
    transfers,
)
from verdigris.store.changes import INSTANCE, changed

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from verdigris.core import Core, Tx

from verdigris.licensing.service import (
    BillingError,
    _now,
    add_notice,
    licences_changed,
)
from verdigris.webhooks.models import webhook_options
from verdigris.webhooks.service import DEFAULT_OPTIONS

# --- transfer of rights (T-08) ---------------------------------------------------------------------------


def transfer_json(row: Any) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "fromAccount": int(row.from_account),
        "toAccount": int(row.to_account),
        "licenseIds": orjson.loads(row.license_ids),
        "status": row.status,
        "requestedMs": int(row.requested_ms),
        "decidedMs": row.decided_ms,
        "acceptedMs": row.accepted_ms,
    }


async def _check_transferable(
    conn: AsyncConnection, account_id: int, license_ids: list[int], at: int
) -> None:
    for license_id in license_ids:
        row = (await conn.execute(select(licenses).where(licenses.c.id == license_id))).first()
        if row is None or row.account_id != account_id:
            raise BillingError(404, f"no license {license_id} of this account", field="license")
        if row.transferred_from is not None:
            raise BillingError(
                409,
                f"license {license_id} arrived by a transfer and can never be transferred again",
                field="license",
            )
        if row.status != "active" or (row.end_ms is not None and int(row.end_ms) <= at):
            raise BillingError(409, f"license {license_id} is over", field="license")


async def request_transfer(
    core: Core, from_account: int, to_username: str, license_ids: list[int], at_ms: int | None = None
) -> dict[str, Any]:
    at = _now(at_ms)
    if not license_ids or len(set(license_ids)) != len(license_ids):
        raise BillingError(400, "licenseIds must list distinct licenses", field="license")
    async with core.tx() as tx:
        to = (
            await tx.conn.execute(
                select(accounts.c.id, accounts.c.role).where(accounts.c.username == to_username)
            )
        ).first()
        if to is None or to.role != "licensee":
            raise BillingError(404, f"no licensee {to_username!r}", field="to")
        if int(to.id) == from_account:
            raise BillingError(400, "rights cannot be transferred to the same account", field="to")
        await _check_transferable(tx.conn, from_account, license_ids, at)
        pending = (
            await tx.conn.execute(
                select(transfers.c.license_ids).where(transfers.c.status.in_(("requested", "approved")))
            )
        ).all()
        busy = {i for (ids,) in pending for i in orjson.loads(ids)}
        if busy & set(license_ids):
            raise BillingError(409, "a license is already in a pending transfer", field="license")
        result = await tx.conn.execute(
            insert(transfers).values(
                from_account=from_account,
                to_account=int(to.id),
                license_ids=orjson.dumps(sorted(license_ids)).decode(),
                status="requested",
                requested_ms=at,
            )
        )
        transfer_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        await add_notice(
            tx.conn,
            int(to.id),
            "transferOffered",
            f"Licenses {sorted(license_ids)} are offered to you (transfer {transfer_id}).",
            {"transferId": transfer_id},
            at,
        )
        row = (await tx.conn.execute(select(transfers).where(transfers.c.id == transfer_id))).first()
    return transfer_json(row)


async def decide_transfer(
    core: Core, operator_id: int, transfer_id: int, approve: bool, at_ms: int | None = None
) -> dict[str, Any]:
    at = _now(at_ms)
    async with core.tx() as tx:
        row = (await tx.conn.execute(select(transfers).where(transfers.c.id == transfer_id))).first()
        if row is None:
            raise BillingError(404, f"no transfer {transfer_id}")
        if row.status != "requested":
            raise BillingError(409, f"transfer {transfer_id} is {row.status}")
        await tx.conn.execute(
            update(transfers)
            .where(transfers.c.id == transfer_id)
            .values(status="approved" if approve else "rejected", decided_ms=at, decided_by=operator_id)
        )
        row = (await tx.conn.execute(select(transfers).where(transfers.c.id == transfer_id))).first()
    return transfer_json(row)


async def accept_transfer(
    core: Core, account_id: int, transfer_id: int, at_ms: int | None = None
) -> dict[str, Any]:
    """The receiver accepts the license agreement: the licenses and their instances move to it."""
    at = _now(at_ms)
    async with core.tx() as tx:
        row = (await tx.conn.execute(select(transfers).where(transfers.c.id == transfer_id))).first()
        if row is None or int(row.to_account) != account_id:
            raise BillingError(404, f"no transfer {transfer_id} to this account")
        if row.status != "approved":
            raise BillingError(409, f"transfer {transfer_id} is {row.status}; the operator approves it first")
        ids = [int(i) for i in orjson.loads(row.license_ids)]
        await _check_transferable(tx.conn, int(row.from_account), ids, at)
        moved: list[int] = []
        for license_id in ids:
            lic = (await tx.conn.execute(select(licenses).where(licenses.c.id == license_id))).first()
            assert lic is not None
            instance_id = int(lic.instance_id)
            await tx.conn.execute(
                update(licenses)
                .where(licenses.c.id == license_id)
                .values(account_id=account_id, transferred_from=int(row.from_account), transferred_ms=at)
            )
            # Licenses of the same instance that start later move with it (they are one right).
            await tx.conn.execute(
                update(licenses)
                .where(
                    (licenses.c.instance_id == instance_id)
                    & (licenses.c.account_id == int(row.from_account))
                    & (licenses.c.start_ms > at)
                )
                .values(account_id=account_id, transferred_from=int(row.from_account), transferred_ms=at)
            )
            moved.append(instance_id)
        await tx.conn.execute(
            update(transfers).where(transfers.c.id == transfer_id).values(status="accepted", accepted_ms=at)
        )
        moved = list(dict.fromkeys(moved))
        for instance_id in moved:
            await _hand_over(core, tx, instance_id, account_id)
        giver, listed = int(row.from_account), ", ".join(str(i) for i in moved)
        await add_notice(
            tx.conn,
            giver,
            "transferCompleted",
            f"Instances {listed} moved to another account (transfer {transfer_id}). Their tokens were "
            "replaced and their webhook settings cleared: your access to them has ended.",
            {"transferId": transfer_id, "instanceIds": moved},
            at,
        )
        await add_notice(
            tx.conn,
            account_id,
            "transferReceived",
            f"Instances {listed} are yours now (transfer {transfer_id}). They have new apiTokenInstance "
            "values and no webhook: set webhookUrl and signing again if you use them.",
            {"transferId": transfer_id, "instanceIds": moved},
            at,
        )
        licences_changed(tx, moved)
        row = (await tx.conn.execute(select(transfers).where(transfers.c.id == transfer_id))).first()
    return transfer_json(row)


async def _hand_over(core: Core, tx: Tx, instance_id: int, account_id: int) -> None:
    """End the old owner's access to a moved instance on every face: a new token (wire, webhook
    API), no webhook URL or its token, and no signing secret (the new owner sets their own)."""
    rec = await core.instances.get(instance_id, tx.conn)
    if rec is None:
        return
    await replace_token(tx, rec)
    settings = {**rec.settings, "webhookUrl": "", "webhookUrlToken": ""}
    await tx.conn.execute(
        update(instances)
        .where(instances.c.id == instance_id)
        .values(account_id=account_id, settings=orjson.dumps(settings).decode())
    )
    changed(tx, INSTANCE, instance_id)
    await tx.conn.execute(delete(webhook_options).where(webhook_options.c.instance_id == instance_id))

    def switch() -> None:
        rec.account_id = account_id
        rec.settings = settings
        core.dispatcher.options_changed(instance_id, DEFAULT_OPTIONS)
        core.hub.notify(instance_id)

    tx.on_commit(switch)


async def list_transfers(core: Core, account_id: int | None = None) -> list[dict[str, Any]]:
    query = select(transfers).order_by(transfers.c.id.desc())
    if account_id is not None:
        query = query.where((transfers.c.from_account == account_id) | (transfers.c.to_account == account_id))
    async with core.read() as conn:
        rows = (await conn.execute(query)).all()
    return [transfer_json(r) for r in rows]

"""The one owner of a message's status: every UPDATE of ``messages.status`` happens here.

Channels, the send worker, screening and the media fetcher report what happened to a message
through these functions and never write the ``messages`` table themselves:

* :func:`set_status` moves one message on, writes the row, queues the ``outgoingMessageStatus``
  notification (which runs the event hooks: the send policy counts failures there) and, when the
  message is back in the queue, wakes the send worker after the commit;
* :func:`claim` takes a queued message for sending (``pending``); :func:`requeue` puts claimed
  messages back; :func:`withdraw` takes waiting ones out of the queue (``cleared``);
* :func:`mark_incoming_read` records that the instance read messages it received;
* :func:`wake` / :func:`wake_after` are the only ways to tell the send worker an instance's queue
  may move (accepted, released, authorized, renewed, resumed...).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, ColumnElement, bindparam, update

from verdigris.messaging.models import messages
from verdigris.messaging.notifications import Event, emit, status_event
from verdigris.messaging.vocabulary import FINAL, WAITING, Status, status_advances
from verdigris.store import leases
from verdigris.store.clock import now_ms
from verdigris.store.direct import Direct

if TYPE_CHECKING:
    from verdigris.core import Core, Tx
    from verdigris.instances.service import InstanceRecord

# Built once with bind parameters (docs/performance.md); the SET columns come from the parameters.
_UPDATE = Direct(update(messages).where(messages.c.id == bindparam("row_id")))
_UPDATE_IF = update(messages).where(
    (messages.c.id == bindparam("row_id")) & messages.c.status.in_(bindparam("expect", expanding=True))
)
_CLAIM = Direct(
    update(messages)
    .where((messages.c.id == bindparam("row_id")) & (messages.c.status == Status.QUEUED))
    .values(status=Status.PENDING, sent_ms=bindparam("now", type_=BigInteger))
)
# The same, only while the sender's process holds the instance's send lease (store/leases.py).
_CLAIM_LEASED = (
    update(messages)
    .where((messages.c.id == bindparam("row_id")) & (messages.c.status == Status.QUEUED) & leases.HELD)
    .values(status=Status.PENDING, sent_ms=bindparam("now", type_=BigInteger))
)
_READ = (
    update(messages).where(messages.c.id.in_(bindparam("row_ids", expanding=True))).values(status=Status.READ)
)
# The statuses an integrator is told about (outgoingMessageStatus).
_REPORTED = frozenset({Status.SENT, Status.DELIVERED, Status.READ}) | FINAL


async def set_status(
    tx: Tx,
    rec: InstanceRecord | None,
    row_id: int,
    chat_id: str,
    id_message: str,
    status: Status,
    description: str = "",
    *,
    current: str | None = None,
    expect: Collection[str] | None = None,
    sent_by_api: bool = True,
    columns: Mapping[str, Any] | None = None,
    at_ms: int = 0,
    announce: Event | None = None,
) -> bool:
    """Move the journal row ``row_id`` (message ``id_message`` of ``rec`` in ``chat_id``) to
    ``status``, in ``tx``. Returns whether it moved.

    ``current``: the row's status as the caller read it; the move happens only if statuses go
    forward from there (sent → delivered → read; a final status is never left). ``expect``: the
    statuses the row must be in at the moment of writing (a conditional UPDATE, for rows others
    may move concurrently). ``columns`` are written with the status (who sent it, ...).

    A reported status (sent, delivered, read, final) queues the status notification for ``rec``,
    preceded by ``announce`` if given; ``queued`` wakes the send worker after the commit.
    """
    if current is not None and not status_advances(current, status):
        return False
    now = now_ms()
    values: dict[str, Any] = {"status": status, "description": description}
    if status == Status.SENT:
        values["sent_ms"] = now
    if columns:
        values.update(columns)
    if expect is None:
        await _UPDATE.run(tx.conn, {"row_id": row_id, **values})
    else:
        result = await tx.conn.execute(_UPDATE_IF, {"row_id": row_id, "expect": list(expect), **values})
        if not result.rowcount:
            return False
    if rec is None:
        return True
    if status in _REPORTED:
        if announce is not None:
            await emit(tx, rec, announce)
        await emit(tx, rec, status_event(chat_id, id_message, status, description, sent_by_api, at_ms or now))
    elif status == Status.QUEUED:
        wake_after(tx, rec)
    return True


async def claim(tx: Tx, row_id: int, now: int, lease: dict[str, Any] | None = None) -> bool:
    """Take a queued message for sending (``pending``); False when someone else (in any process)
    took or withdrew it first, or when ``lease`` (``WorkLeases.fence``) is no longer held."""
    if lease is None:
        result = await _CLAIM.run(tx.conn, {"row_id": row_id, "now": now})
    else:
        result = await tx.conn.execute(_CLAIM_LEASED, {"row_id": row_id, "now": now, **lease})
    return bool(result.rowcount)


async def requeue(tx: Tx, claimed: ColumnElement[bool], wake: Collection[InstanceRecord] = ()) -> int:
    """Put the claimed (``pending``) messages that ``claimed`` selects back into the queue (a send
    interrupted or postponed); the instances in ``wake`` are woken after the commit."""
    result = await tx.conn.execute(
        update(messages).where(claimed & (messages.c.status == Status.PENDING)).values(status=Status.QUEUED)
    )
    for rec in wake:
        wake_after(tx, rec)
    return int(result.rowcount or 0)


async def withdraw(tx: Tx, which: ColumnElement[bool]) -> int:
    """Take the waiting messages that ``which`` selects out of the queue; they stay in the journal
    as ``cleared`` (hidden from it)."""
    result = await tx.conn.execute(
        update(messages).where(which & messages.c.status.in_(WAITING)).values(status=Status.CLEARED)
    )
    return int(result.rowcount or 0)


async def mark_incoming_read(tx: Tx, row_ids: list[int]) -> None:
    """The instance read these messages it received."""
    if row_ids:
        await tx.conn.execute(_READ, {"row_ids": row_ids})


def wake(core: Core, rec: InstanceRecord) -> None:
    """The instance's queue may move now (the caller's transaction, if any, has committed)."""
    core.sender.wake(rec)


def wake_after(tx: Tx, rec: InstanceRecord) -> None:
    """The instance's queue may move once ``tx`` has committed."""
    core = tx.core
    tx.on_commit(lambda: wake(core, rec))

"""``Idempotency-Key`` on the sending methods: a retried send gets the first answer.

A client whose answer was lost (the connection broke, the server died between the commit and the
reply) cannot tell whether its message was queued; with a key of its choosing in this header it
can simply send the same request again. This is Verdigris's extension of the wire (the official
SDKs never send the header, so nothing changes for them); docs/idempotency.md describes it.

How it stays exact: the wire router opens a :class:`Claim` for the call (:func:`claiming`); the
transaction that queues the call's messages writes the key with their ids (:func:`record`, called by
``messaging.service.send_many``), so the key exists if and only if the messages do. The router then
stores the answer it gave (:func:`store_answer`). A later call with the key finds the row
(:func:`find`): the same request gets the stored answer (rebuilt from the ids when the server died
before storing it); another request under the same key is refused. Two calls racing with one key
collide on the key's primary key: the loser's transaction, messages included, rolls back and it
answers what the winner queued. Keys are kept :data:`KEEP_MS`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import orjson
from sqlalchemy import delete, insert, select, update

from verdigris.messaging.models import idempotency_keys
from verdigris.store.clock import now_ms

if TYPE_CHECKING:
    from verdigris.core import Core, Tx

HEADER = "Idempotency-Key"
MAX_LENGTH = 255
KEEP_MS = 24 * 3_600_000


@dataclass(slots=True)
class Claim:
    instance_id: int
    key: str
    fingerprint: str
    recorded: bool = False


@dataclass(slots=True)
class Earlier:
    """A key already used: what it was used for and what was answered."""

    fingerprint: str
    body: bytes  # the answer's body, as sent the first time


_CLAIM: ContextVar[Claim | None] = ContextVar("verdigris_idempotency_claim", default=None)


def problem(key: str) -> str | None:
    """Why the header's value cannot be a key, or None."""
    if not key or len(key) > MAX_LENGTH:
        return f"{HEADER} must be 1 to {MAX_LENGTH} characters long"
    if not all("!" <= c <= "~" for c in key):
        return f"{HEADER} may hold visible ASCII characters only (no spaces)"
    return None


def fingerprint(method: str, body: bytes) -> str:
    """What identifies the request a key was used for: the method and the exact body."""
    return hashlib.sha256(method.lower().encode() + b"\0" + body).hexdigest()


@contextmanager
def claiming(claim: Claim) -> Iterator[Claim]:
    token = _CLAIM.set(claim)
    try:
        yield claim
    finally:
        _CLAIM.reset(token)


def current() -> Claim | None:
    """The claim of the wire call being run, if it has a key (read it in the caller's task)."""
    return _CLAIM.get()


async def record(tx: Tx, claim: Claim | None, ids: list[str]) -> None:
    """Write the call's key with the ids it queued, in the transaction that queues them. The claim
    counts as recorded once that transaction has committed (a rolled-back one may run again)."""
    if claim is None or claim.recorded or not ids:
        return
    await tx.conn.execute(
        insert(idempotency_keys).values(
            instance_id=claim.instance_id,
            key=claim.key,
            fingerprint=claim.fingerprint,
            ids=orjson.dumps(ids).decode(),
            created_ms=now_ms(),
        )
    )
    tx.on_commit(partial(setattr, claim, "recorded", True))


async def find(core: Core, instance_id: int, key: str) -> Earlier | None:
    async with core.read() as conn:
        row = (
            await conn.execute(
                select(
                    idempotency_keys.c.fingerprint, idempotency_keys.c.ids, idempotency_keys.c.answer
                ).where(
                    (idempotency_keys.c.instance_id == instance_id)
                    & (idempotency_keys.c.key == key)
                    & (idempotency_keys.c.created_ms >= now_ms() - KEEP_MS)
                )
            )
        ).first()
    if row is None:
        return None
    if row.answer is not None:
        return Earlier(row.fingerprint, row.answer.encode())
    ids = orjson.loads(row.ids)  # the server stopped before it stored the answer
    return Earlier(
        row.fingerprint, orjson.dumps({"idMessage": ids[0]} if len(ids) == 1 else {"messages": ids})
    )


async def store_answer(core: Core, claim: Claim, body: bytes) -> None:
    if not claim.recorded:
        return
    async with core.tx() as tx:
        await tx.conn.execute(
            update(idempotency_keys)
            .where(
                (idempotency_keys.c.instance_id == claim.instance_id) & (idempotency_keys.c.key == claim.key)
            )
            .values(answer=body.decode())
        )


async def purge(core: Core) -> int:
    """Forget keys older than :data:`KEEP_MS` (run periodically)."""
    async with core.tx() as tx:
        result = await tx.conn.execute(
            delete(idempotency_keys).where(idempotency_keys.c.created_ms < now_ms() - KEEP_MS)
        )
    return int(result.rowcount or 0)

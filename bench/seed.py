"""Bulk set-up of a benchmark data dir, written straight into the real schema.

Thousands of HTTP calls would make set-up dominate the run, so instances, phones and queued
notifications are inserted with SQLAlchemy Core on the project's own tables (migrated by the
project's own Alembic scripts), and notification bodies come from the project's own renderer.
"""

from __future__ import annotations

import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import SRC

sys.path.insert(0, str(SRC))

import orjson  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from verdigris.channels.sandbox.models import sandbox_phones  # noqa: E402
from verdigris.greenapi import render  # noqa: E402
from verdigris.instances import settings as catalogue  # noqa: E402
from verdigris.instances.models import instances  # noqa: E402
from verdigris.instances.service import AUTHORIZED, InstanceRecord  # noqa: E402
from verdigris.messaging.notifications import Event  # noqa: E402
from verdigris.store.clock import now_ms  # noqa: E402
from verdigris.store.migrate import upgrade  # noqa: E402

FIRST_ID = 7710000000
SINK_PHONE = "79000000000"


@dataclass
class Inst:
    id: int
    token: str
    phone: str
    flags: tuple[str, ...] = ()
    state: str = AUTHORIZED
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def wid(self) -> str:
        return f"{self.phone}@c.us" if self.phone else ""

    def settings(self) -> dict[str, Any]:
        values = catalogue.defaults(0)
        values.update({flag: "yes" for flag in self.flags})
        values.update(self.extra)
        return values


def make_instances(count: int, *, start: int = 0, flags: tuple[str, ...] = ()) -> list[Inst]:
    return [
        Inst(FIRST_ID + i, secrets.token_hex(25), str(75000000000 + i), flags)
        for i in range(start, start + count)
    ]


def write_creds(path: Path, items: list[Inst]) -> Path:
    path.write_text("".join(f"{i.id} {i.token}\n" for i in items))
    return path


def sample_body(inst: Inst) -> str:
    """A realistic incomingMessageReceived body, rendered by the project's renderer."""
    rec = InstanceRecord(
        id=inst.id,
        token=inst.token,
        account_id=None,
        state=inst.state,
        wid=inst.wid,
        channel="sandbox",
        name="",
    )
    data = {
        "id_message": "BAE5F4886F6F2D05",
        "chat_id": f"{SINK_PHONE}@c.us",
        "chat_name": "Sink",
        "sender": f"{SINK_PHONE}@c.us",
        "sender_name": "Sink",
        "sender_contact_name": "",
        "type_message": "textMessage",
        "content": {"text": "a queued benchmark notification"},
    }
    return render.notification(rec, Event("incomingMessageReceived", data))


def migrate(url: str) -> None:
    upgrade(url)


async def seed(
    url: str,
    items: list[Inst],
    *,
    phones: list[str] = (),  # type: ignore[assignment]
    notifications: dict[int, int] | None = None,
) -> None:
    """Insert instances, sandbox phones and ``notifications[instance_id]`` queued notifications."""
    engine = create_async_engine(url)
    created = now_ms()
    try:
        async with engine.begin() as conn:
            for start in range(0, len(items), 20_000):
                chunk = items[start : start + 20_000]
                await conn.execute(
                    insert(instances),
                    [
                        {
                            "id": i.id,
                            "account_id": None,
                            "token": i.token,
                            "name": "",
                            "channel": "sandbox",
                            "state": i.state,
                            "wid": i.wid,
                            "settings": orjson.dumps(i.settings()).decode(),
                            "created_ms": created,
                        }
                        for i in chunk
                    ],
                )
            if phones:
                await conn.execute(
                    insert(sandbox_phones),
                    [{"number": p, "name": f"phone {p}", "created_ms": created} for p in phones],
                )
        by_id = {i.id: i for i in items}
        for instance_id, count in (notifications or {}).items():
            body = sample_body(by_id[instance_id])
            params = {"iid": instance_id, "body": body, "at": created, "n": count}
            async with engine.begin() as conn:
                if url.startswith("sqlite"):
                    await conn.execute(
                        text(
                            "WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq WHERE x < :n) "
                            "INSERT INTO notifications (instance_id, type, body, created_ms) "
                            "SELECT :iid, 'incomingMessageReceived', :body, :at FROM seq"
                        ),
                        params,
                    )
                else:
                    await conn.execute(
                        text(
                            "INSERT INTO notifications (instance_id, type, body, created_ms) "
                            "SELECT :iid, 'incomingMessageReceived', :body, :at FROM generate_series(1, :n)"
                        ),
                        params,
                    )
        if not url.startswith("sqlite"):
            # A PostgreSQL server would have auto-analyzed tables this size; SQLite gets no ANALYZE
            # because a fresh embedded install never runs one either.
            async with engine.begin() as conn:
                await conn.execute(text("ANALYZE"))
    finally:
        await engine.dispose()

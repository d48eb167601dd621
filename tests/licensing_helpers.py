"""In-process helpers for licensing tests: a Core on a temporary data dir, and a movable clock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import select

from verdigris.accounts import service as accounts
from verdigris.app import build_core, prepare
from verdigris.config import Settings
from verdigris.core import Core
from verdigris.instances import service as instances
from verdigris.instances.settings import MESSAGE_FLAGS
from verdigris.messaging.models import notifications

T = TypeVar("T")
MSK = ZoneInfo("Europe/Moscow")

REQUISITES = {
    "operator_timezone": "Europe/Moscow",
    "operator_legal_name": "Verdigris Test Operator LLC",
    "operator_registration_number": "1027700000042",
    "operator_tax_id": "7700000042",
    "operator_address": "1 Test Street, Moscow",
    "operator_bank_details": "IBAN DE89 3704 0044 0532 0130 00, BIC COBADEFFXXX",
    "operator_email": "billing@operator.test",
    "send_delay_min_ms": 0,
    "send_delay_default_ms": 0,
}


def msk(*args: int) -> int:
    """Milliseconds of a wall-clock time in Moscow (the tests' operator zone)."""
    return int(datetime(*args, tzinfo=MSK).timestamp() * 1000)  # type: ignore[misc]


def run(tmp_path: Path, scenario: Callable[[Core], Awaitable[T]], **overrides: Any) -> T:
    async def main() -> T:
        settings = Settings(data_dir=tmp_path / "data", demo=False, **{**REQUISITES, **overrides})
        core = build_core(settings)
        await prepare(core)
        try:
            return await scenario(core)
        finally:
            await core.db.dispose()

    return asyncio.run(main())


class Clock:
    """Replaces the licensing runtime's clock (``enforce.now_ms``)."""

    def __init__(self, monkeypatch: Any, at_ms: int) -> None:
        self.at = at_ms
        import verdigris.licensing.enforce as enforce

        monkeypatch.setattr(enforce, "now_ms", lambda: self.at)


async def licensee(core: Core, username: str = "lee", email: str = "lee@example.test") -> int:
    return await accounts.create_account(
        core,
        username=username,
        password="pw-" + username,
        role="licensee",
        email=email,
        name=username.title(),
    )


async def instance(core: Core, account_id: int) -> instances.InstanceRecord:
    return await instances.create(core, account_id=account_id, settings={f: "yes" for f in MESSAGE_FLAGS})


async def notification_bodies(core: Core, instance_id: int, kind: str) -> list[dict[str, Any]]:
    async with core.read() as conn:
        rows = (
            await conn.execute(
                select(notifications.c.body).where(
                    (notifications.c.instance_id == instance_id) & (notifications.c.type == kind)
                )
            )
        ).all()
    return [orjson.loads(r[0]) for r in rows]


def sync(coro: Awaitable[T]) -> T:  # pragma: no cover - convenience for debugging
    return asyncio.get_event_loop().run_until_complete(coro)

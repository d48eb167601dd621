"""The instance index (instances/service.py ``InstanceCache.load_index``, licensing's
``load_index``): an instance's first request after a start is served from memory, and an entry
that another process may have changed is dropped so that request reads the store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import event

from verdigris.app import build_core, prepare
from verdigris.config import Settings
from verdigris.instances import service as instances
from verdigris.store.clock import now_ms


def count_statements(core: Any) -> list[str]:
    seen: list[str] = []
    for engine in {core.db.engine, core.db.reader}:
        event.listen(
            engine.sync_engine, "before_cursor_execute", lambda *args: seen.append(str(args[2])[:60])
        )
    return seen


def test_first_touch_is_served_from_the_index(tmp_path: Path) -> None:
    async def main() -> None:
        settings = Settings(data_dir=tmp_path, demo=False)
        writer = build_core(settings)
        await prepare(writer)
        made = [
            await instances.create(writer, account_id=None, settings={"webhookUrl": f"https://h{n}.example/"})
            for n in range(4)
        ]
        twins = [await instances.create(writer, account_id=None, settings={}) for _ in range(2)]
        # Another process (a restart, or a second server on the store) loads its index.
        reader = build_core(settings)
        try:
            assert await reader.instances.load_index() == 6
            await reader.licensing.load_index()
            statements = count_statements(reader)

            rec = await reader.instances.get(made[0].id)
            assert rec is not None and rec.token == made[0].token
            assert (
                rec.settings["webhookUrl"] == "https://h0.example/" and rec.created_ms == made[0].created_ms
            )
            ent = await reader.licensing.entitlement(rec, now_ms())
            assert ent.licenses == [] and ent.unlicensed == settings.licensing_unlicensed
            assert statements == []  # neither the row nor the entitlement was read

            # Instances with the same settings text share its parse, never the dict itself.
            first, second = [await reader.instances.get(t.id) for t in twins]
            assert first is not None and second is not None and statements == []
            assert first.settings == second.settings and first.settings is not second.settings
            first.settings["webhookUrl"] = "https://changed.example/"
            assert second.settings["webhookUrl"] == ""

            # The writer rotates a token; the change log makes the reader refresh the instance,
            # which drops its index entry: the next request reads the new token from the store.
            old_token = made[1].token
            rotated = await instances.rotate_token(writer, made[1])
            async with reader.read() as conn:
                await reader.instances.refresh(made[1].id, conn)
            fresh = await reader.instances.get(made[1].id)
            assert fresh is not None and fresh.token == rotated != old_token
            assert statements, "the refreshed instance was read from the store"

            statements.clear()
            reader.instances.forget(made[2].id)
            reader.licensing.forget(made[2].id)  # its licences changed
            again = await reader.instances.get(made[2].id)
            assert again is not None and again.token == made[2].token
            await reader.licensing.entitlement(again, now_ms())
            assert len(statements) >= 2, statements  # the row and the licences were read

            # A deleted instance is gone from the index at once (the delete refreshes it).
            await instances.delete(writer, made[3])
            async with reader.read() as conn:
                await reader.instances.refresh(made[3].id, conn)
            assert await reader.instances.get(made[3].id) is None
        finally:
            await reader.db.dispose()
            await writer.db.dispose()

    asyncio.run(main())

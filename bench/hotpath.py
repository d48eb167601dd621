"""Statement count and CPU time of the message hot path, in-process (no HTTP, no wrk).

    python bench/hotpath.py                 # SQLite in a temp dir
    python bench/hotpath.py --profile 25    # plus the 25 costliest functions of each phase (cProfile)
    VERDIGRIS_BENCH_PG_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/verdigris_hotpath \\
        python bench/hotpath.py --pg        # the same on a fresh PostgreSQL database

The phases are the service calls behind the wire methods: ``messaging.service.send`` (what
sendMessage commits), the send worker's delivery of the queue head (``SendWorker._send_head``,
the sandbox routing included), and ``notifications.head`` + ``notifications.acknowledge``
(receiveNotification + deleteNotification). Two shapes of delivery are measured:

- ``sink``: instances that are not sandbox phones themselves write to a phone with no linked
  instance (the shape of B1);
- ``pair``: instance A (linked to sandbox phone A) writes to phone B, whose linked instance B gets
  the message (the shape of B3's probes): the full path, with an incoming notification.

Statements are counted with a ``before_cursor_execute`` listener on both engines (``BEGIN
IMMEDIATE`` included, ``COMMIT`` not). CPU is ``time.process_time`` of this process, so it is
steadier than wall time on a shared machine but includes PostgreSQL's client side only.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from common import SRC

sys.path.insert(0, str(SRC))

import seed  # noqa: E402
from sqlalchemy import event, text  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from verdigris.app import build_core, prepare  # noqa: E402
from verdigris.config import Settings  # noqa: E402
from verdigris.core import Core  # noqa: E402
from verdigris.messaging import notifications  # noqa: E402
from verdigris.messaging import service as messaging  # noqa: E402


class StatementCounter:
    def __init__(self, core: Core) -> None:
        self.count = 0
        self.texts: Counter[str] = Counter()
        engines = {id(core.db.engine): core.db.engine, id(core.db.reader): core.db.reader}
        for engine in engines.values():
            event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.count += 1
        self.texts[" ".join(statement.split())[:110]] += 1


class Phase:
    def __init__(self, counter: StatementCounter, profile: int) -> None:
        self.counter = counter
        self.profile = profile
        self.results: list[tuple[str, int, int, float, str]] = []

    async def run(self, name: str, items: int, work: Any) -> None:
        before = self.counter.count
        self.counter.texts.clear()
        prof = cProfile.Profile() if self.profile else None
        cpu = time.process_time()
        if prof:
            prof.enable()
        await work()
        if prof:
            prof.disable()
        cpu = time.process_time() - cpu
        report = ""
        if prof:
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(self.profile)
            report = out.getvalue()
        statements = self.counter.count - before
        self.results.append((name, items, statements, cpu, report))
        print(f"{name:<34} {statements / items:6.1f} statements, {cpu / items * 1000:6.3f} ms CPU per item")
        if report:
            print(report)
        if os.environ.get("HOTPATH_SQL"):
            for sql, n in self.counter.texts.most_common():
                print(f"    {n / items:5.2f}  {sql}")


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="verdigris-hotpath-"))
    env_url = ""
    if args.pg:
        base = os.environ.get(
            "VERDIGRIS_BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/verdigris_hotpath"
        )
        server, name = base.rsplit("/", 1)
        admin = create_async_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await admin.dispose()
        env_url = base
    settings = Settings(
        data_dir=tmp, database_url=env_url, demo=False, send_delay_min_ms=0, send_delay_default_ms=0
    )
    core = build_core(settings)
    await prepare(core)
    url = settings.resolved_database_url()
    n = args.messages
    senders = seed.make_instances(n)
    # A wants its statuses and API echoes, B its incoming messages (the usual integrator settings).
    pair_a = seed.make_instances(n, start=n, flags=("outgoingWebhook", "outgoingAPIMessageWebhook"))
    pair_b = seed.make_instances(n, start=2 * n, flags=("incomingWebhook",))
    phones = [seed.SINK_PHONE] + [i.phone for i in pair_a + pair_b]
    await seed.seed(url, senders + pair_a + pair_b, phones=phones)
    counter = StatementCounter(core)
    phase = Phase(counter, args.profile)
    assert core.sender is not None
    sender = core.sender

    async def recs(items: list[seed.Inst]) -> list[Any]:
        out = []
        for item in items:
            rec = await core.instances.get(item.id)
            assert rec is not None
            out.append(rec)
        return out

    sink_recs = await recs(senders)
    a_recs = await recs(pair_a)
    b_recs = await recs(pair_b)
    # Warm caches that a running server has warm (instance cache, entitlements, compiled statements).
    warm = seed.make_instances(1, start=3 * n)
    await seed.seed(url, warm, phones=[])
    (warm_rec,) = await recs(warm)
    for _ in range(3):
        msg = messaging.OutgoingMessage(
            f"{seed.SINK_PHONE}@c.us", "sendMessage", "textMessage", {"text": "w"}
        )
        await messaging.send(core, warm_rec, msg)
        await sender._send_head(warm_rec.id)
        while (head := await notifications.head(core, warm_rec.id)) is not None:
            await notifications.acknowledge(core, warm_rec.id, head[0])

    def message(to: str) -> messaging.OutgoingMessage:
        return messaging.OutgoingMessage(
            chat_id=to,
            kind="sendMessage",
            type_message="textMessage",
            content={"text": "hello from the hot path"},
            request={"chatId": to, "message": "hello from the hot path"},
        )

    async def accept(items: list[Any], to: list[str]) -> None:
        for rec, chat in zip(items, to, strict=True):
            await messaging.send(core, rec, message(chat))

    async def deliver(items: list[Any]) -> None:
        for rec in items:
            await sender._send_head(rec.id)

    async def drain(items: list[Any]) -> None:
        for rec in items:
            while (head := await notifications.head(core, rec.id)) is not None:
                await notifications.acknowledge(core, rec.id, head[0])

    async def entitle(items: list[Any]) -> None:
        assert core.licensing is not None
        for rec in items:
            await core.licensing.may_send(rec)

    # A running server has most entitlements cached (re-read every minute): measured on its own.
    await phase.run("licensing first touch", 3 * n, lambda: entitle(sink_recs + a_recs + b_recs))
    sink = [f"{seed.SINK_PHONE}@c.us"] * n
    await phase.run("accept (send)", n, lambda: accept(sink_recs, sink))
    await phase.run("deliver, sink shape (B1)", n, lambda: deliver(sink_recs))
    await phase.run("receive+delete (per notification)", 2 * n, lambda: drain(sink_recs))
    await accept(a_recs, [f"{b.phone}@c.us" for b in pair_b])
    await phase.run("deliver, pair shape (B3)", n, lambda: deliver(a_recs))
    await phase.run("receive+delete A and B (per message)", n, lambda: drain(a_recs + b_recs))
    await core.db.dispose()
    if args.pg:
        admin = create_async_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        await admin.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--profile", type=int, default=0, help="print the N costliest functions per phase")
    parser.add_argument("--pg", action="store_true")
    asyncio.run(main(parser.parse_args()))

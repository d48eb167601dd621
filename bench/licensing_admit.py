"""How much the licensing check adds to a wire call: ``Licensing.admit`` timed in-process.

Run: ``python bench/licensing_admit.py`` (from the repository root, with ``src`` on the path).
Prints microseconds per call for an unlicensed (open) instance, a paid unlimited license and a
free-tier license with quotas and the correspondents limit, plus the cost of one counter flush.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from verdigris.accounts import service as accounts  # noqa: E402
from verdigris.app import build_core, prepare  # noqa: E402
from verdigris.config import Settings  # noqa: E402
from verdigris.greenapi import methods  # noqa: E402, F401  (registers every wire method)
from verdigris.greenapi.registry import REGISTRY  # noqa: E402
from verdigris.instances import service as instances  # noqa: E402
from verdigris.licensing import service  # noqa: E402

CALLS = 100_000


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        core = build_core(Settings(data_dir=Path(tmp), demo=False))
        await prepare(core)
        lic = core.licensing
        assert lic is not None
        owner = await accounts.create_account(core, username="b", password="b", role="licensee")
        await service.publish_tariff(core, code="pro", name="Pro", price="10.00", currency="USD")
        await service.publish_tariff(
            core,
            code="dev",
            name="Dev",
            price="0",
            currency="USD",
            kind="free",
            limits={"correspondents": 3, "methods": {"checkWhatsapp": 10**9}},
        )
        open_rec = await instances.create(core, account_id=owner)
        paid_rec = await instances.create(core, account_id=owner)
        free_rec = await instances.create(core, account_id=owner)
        await service.grant(core, instance_id=paid_rec.id, code="pro", days=30)
        await service.start_free(core, owner, free_rec.id, "dev")
        for label, rec, method, chat in (
            ("unlicensed (open)", open_rec, "sendMessage", "1@c.us"),
            ("paid, unlimited", paid_rec, "sendMessage", "1@c.us"),
            ("free tier, sendMessage to a known chat", free_rec, "sendMessage", "1@c.us"),
            ("free tier, checkWhatsapp with a quota", free_rec, "checkWhatsapp", None),
        ):
            # As the wire router calls it: the method registry says what the method does.
            spec = REGISTRY[method.lower()]
            sending, when_expired = spec.sends_message, spec.when_expired
            await lic.admit(rec, method, chat, sending=sending, when_expired=when_expired)  # warm the caches
            start = time.perf_counter()
            for _ in range(CALLS):
                await lic.admit(rec, method, chat, sending=sending, when_expired=when_expired)
            per_call = (time.perf_counter() - start) / CALLS * 1e6
            print(f"{label:45s} {per_call:6.2f} us/call")
        start = time.perf_counter()
        rows = await lic.flush()
        print(f"flush of {rows} counter rows: {(time.perf_counter() - start) * 1000:.1f} ms")
        # A busy server: 10 000 active instances, two methods each, in one flush interval.
        period = lic.period(0 + int(time.time() * 1000))
        for i in range(10_000):
            lic.count(9_000_000_000 + i, period, "sendmessage", None)
            lic.count(9_000_000_000 + i, period, "receivenotification", None)
        for _ in range(2):  # inserts first, then updates of the same rows
            for i in range(10_000):
                lic.count(9_000_000_000 + i, period, "sendmessage", None)
            start = time.perf_counter()
            rows = await lic.flush()
            print(f"flush of {rows} counter rows: {(time.perf_counter() - start) * 1000:.1f} ms")
        await core.db.dispose()


if __name__ == "__main__":
    asyncio.run(main())

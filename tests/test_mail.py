"""Every mail of the product goes out through one module: SMTP when configured, else the outbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from licensing_helpers import Clock, instance, licensee, msk, run
from smtp_catcher import MailCatcher
from verdigris.core import Core
from verdigris.licensing import service
from verdigris.licensing.worker import LicensingWorker


def test_license_expiry_reminders_arrive_at_the_smtp_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch, msk(2026, 7, 1, 9))

    async def scenario(core: Core) -> None:
        await service.publish_tariff(core, code="pro", name="Pro", price="30.00", currency="USD")
        rec = await instance(core, await licensee(core))
        await service.grant(core, instance_id=rec.id, code="pro", days=10, at_ms=clock.at)
        worker = LicensingWorker(core)
        assert await worker.sweep(msk(2026, 7, 4, 1)) == 1  # under 7 days left
        clock.at = msk(2026, 7, 11)
        assert await worker.sweep(clock.at) == 1  # expired

    with MailCatcher() as smtp:
        run(tmp_path, scenario, smtp_host="127.0.0.1", smtp_port=smtp.port)
        expiring = smtp.wait_for("lee@example.test", "license ends in 7 day(s)")
        expired = smtp.wait_for("lee@example.test", "license expired")
    assert "valid until the start of 2026-07-11" in expiring and "Renew it" in expiring
    assert "Sending has stopped" in expired
    # Delivered, so nothing was left in the outbox; replies go to the operator's billing address.
    assert not list((tmp_path / "data" / "outbox").glob("*.eml"))
    assert {m["Reply-To"] for m in smtp.messages} == {"billing@operator.test"}

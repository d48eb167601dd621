"""Issue 13, item 1: paying for a plan must not cut off an instance that works today.

An unlicensed instance under the default "open" policy is unlimited. A paid license starts the day
after the payment; until then the instance keeps what it had (docs/licensing.md), and the status
shows the paid license as upcoming. The day it starts, the paid license applies.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from licensing_helpers import Clock, instance, licensee, msk, run
from verdigris.core import Core
from verdigris.licensing import billing, service

PRO = {"code": "pro", "name": "Pro", "price": "30.00", "currency": "USD"}


def test_an_unlicensed_instance_keeps_working_until_its_paid_license_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch, msk(2027, 3, 10, 15))

    async def scenario(core: Core) -> None:
        await service.publish_tariff(core, **PRO, limits={"methods": {"checkWhatsapp": 1}})
        owner = await licensee(core)
        rec = await instance(core, owner)
        lic = core.licensing
        assert lic is not None
        assert await lic.admit(rec, "sendMessage", "79990000011@c.us", sending=True) is None
        invoice = await billing.issue_invoice(
            core, owner, [{"instanceId": rec.id, "tariff": "pro"}], at_ms=clock.at
        )
        await billing.record_payment(core, invoice["id"], method="manual", reference="bank-9", at_ms=clock.at)

        # The day of the payment: still unlicensed and unlimited, the paid license waits.
        status = await service.instance_status(core, rec.id, clock.at)
        assert status["state"] == "unlicensed" and status["current"] is None
        assert [u["startsOn"] for u in status["upcoming"]] == ["2027-03-11"]
        lic.forget(rec.id)
        assert await lic.admit(rec, "sendMessage", "79990000012@c.us", sending=True) is None
        assert await lic.may_send(rec)
        for _ in range(3):
            assert await lic.admit(rec, "getMessage", None, sending=False) is None

        # The next day the paid license is current, with its own limits.
        clock.at = msk(2027, 3, 11, 0, 1)
        status = await service.instance_status(core, rec.id, clock.at)
        assert status["state"] == "active" and status["current"]["tariff"]["code"] == "pro"
        assert await lic.admit(rec, "checkWhatsapp", None, sending=False) is None
        refused = await lic.admit(rec, "checkWhatsapp", None, sending=False)
        assert refused is not None and not refused.expired

    run(tmp_path, scenario)

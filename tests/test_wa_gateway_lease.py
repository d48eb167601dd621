"""One holder per WhatsApp Web session: two server processes on one PostgreSQL database, each with
its own gateway, never both run the same instance's session (channels/whatsapp_web/lease.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fake_wa_gateway import FakeWaGateway
from harness import Server
from sandbox_kit import wait_until
from test_whatsapp_web import env_for

pytestmark = pytest.mark.skipif(
    os.environ.get("VERDIGRIS_TEST_DB") != "postgres", reason="several processes share a PostgreSQL store"
)


def running(gateway: FakeWaGateway, session: str) -> bool:
    s = gateway.sessions.get(session)
    return s is not None and s.connected


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[tuple[FakeWaGateway, FakeWaGateway]]:
    """Two fake gateways, one per server process."""
    made = []
    for name in ("g1", "g2"):
        (tmp_path / name).mkdir()
        made.append(FakeWaGateway(tmp_path / name).start())
    yield made[0], made[1]
    for gateway in made:
        gateway.stop()


def test_two_processes_on_one_database_never_hold_the_same_session(
    make_server: Any, tmp_path: Path, gateways: tuple[FakeWaGateway, FakeWaGateway]
) -> None:
    g1, g2 = gateways
    s1: Server = make_server(env=env_for(g1), data_dir=tmp_path / "s1")
    s2: Server = make_server(
        env={**env_for(g2), "VERDIGRIS_DATABASE_URL": s1.env["VERDIGRIS_DATABASE_URL"]},
        data_dir=tmp_path / "s2",
    )
    inst = s1.new_instance("--channel", "whatsapp_web")
    session = str(inst["idInstance"])

    # Linking through the first process takes the lease; the second cannot link it too.
    assert s1.api(inst).account.qr().data["type"] == "qrCode"
    refused = s2.wire(inst, "getAuthorizationCode", verb="POST", json={"phoneNumber": 79990003333})
    assert refused.status_code == 400 and "another server process" in refused.text
    refused = s2.wire(inst, "qr")
    assert refused.status_code == 503 and "another server process" in refused.text
    assert "qr" not in g2.requests and "pair_phone" not in g2.requests
    g1.scan(session, "79990003333")
    wait_until(lambda: s1.api(inst).account.getStateInstance().data == {"stateInstance": "authorized"})

    # The second process's gateway reconnects: it does not open the session the first holds,
    # and a message accepted by the second process goes out through the first one's gateway.
    g2.drop_connection()
    wait_until(lambda: g2.listener is not None and g2.listener.connections >= 2)
    sent = s2.api(inst).sending.sendMessage("79995550010@c.us", "through the holder")
    assert sent.code == 200
    s1.api(inst).sending.sendMessage("79995550010@c.us", "wakes the holder's send worker")
    assert {g1.next_sent()["message"]["text"], g1.next_sent()["message"]["text"]} == {
        "through the holder",
        "wakes the holder's send worker",
    }
    assert "open" not in g2.requests and "send" not in g2.requests and not running(g2, session)

    # The first process stops and gives its partitions and the session up: the second takes
    # them on its next lease beat and opens the session in its own gateway, unasked.
    s1.stop()
    wait_until(lambda: "open" in g2.requests)
    assert not running(g1, session)
    assert s2.api(inst).account.reboot().data == {"isReboot": True}
    wait_until(lambda: "reconnect" in g2.requests)


def test_a_session_runs_where_its_messages_are_sent_and_moves_with_them(
    make_server: Any, tmp_path: Path, gateways: tuple[FakeWaGateway, FakeWaGateway]
) -> None:
    """The session of an instance runs in the process that holds its partition's send lease
    (store/leases.py), whichever process was asked first: otherwise a message would wait forever
    in a process that sends for the instance but cannot reach its session. When that process
    stops, the session moves with the partition."""
    g1, g2 = gateways
    few = {"VERDIGRIS_WORK_PARTITIONS": "2", "VERDIGRIS_WORK_LEASE_SECONDS": "1.5"}
    s1: Server = make_server(env={**env_for(g1), **few}, data_dir=tmp_path / "s1")
    s2: Server = make_server(
        env={**env_for(g2), **few, "VERDIGRIS_DATABASE_URL": s1.env["VERDIGRIS_DATABASE_URL"]},
        data_dir=tmp_path / "s2",
    )
    assert s1.core is not None and s2.core is not None
    one, two = s1.core.leases, s2.core.leases
    wait_until(lambda: len(one.mine) == 1 and len(two.mine) == 1, timeout=60)
    made = [s1.new_instance("--channel", "whatsapp_web") for _ in range(2)]
    inst = next(i for i in made if two.part_of(int(i["idInstance"])) in two.mine)
    session = str(inst["idInstance"])

    # Asked through the process that does not send for it, linking is refused there...
    refused = s1.wire(inst, "qr")
    assert refused.status_code == 503 and "another server process" in refused.text
    assert "qr" not in g1.requests
    # ...and answered by the one that does.
    assert s2.api(inst).account.qr().data["type"] == "qrCode"
    g2.scan(session, "79990004444")
    wait_until(lambda: s2.api(inst).account.getStateInstance().data == {"stateInstance": "authorized"})
    # Accepted by the other process, the message goes out through the sending one's gateway.
    assert s1.api(inst).sending.sendMessage("79995550011@c.us", "where it is sent").code == 200
    assert g2.next_sent()["message"]["text"] == "where it is sent"
    assert "send" not in g1.requests

    # The sending process stops: the partition and the session move to the other process.
    s2.stop()
    wait_until(lambda: "open" in g1.requests and len(one.mine) == 2, timeout=60)
    assert not running(g2, session)

"""One holder per WhatsApp Web session: two server processes on one PostgreSQL database, each with
its own gateway, never both run the same instance's session (channels/whatsapp_web/lease.py)."""

from __future__ import annotations

import os
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


def test_two_processes_on_one_database_never_hold_the_same_session(make_server: Any, tmp_path: Path) -> None:
    g1 = FakeWaGateway(tmp_path / "g1")
    g2 = FakeWaGateway(tmp_path / "g2")
    for directory in (tmp_path / "g1", tmp_path / "g2"):
        directory.mkdir()
    g1.start()
    g2.start()
    try:
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

        # The first process stops and gives its lease up: the second may take the session over.
        s1.stop()
        assert s2.api(inst).account.reboot().data == {"isReboot": True}
        wait_until(lambda: "reconnect" in g2.requests)  # its gateway is asked to run it now
        assert not running(g1, session)
    finally:
        g1.stop()
        g2.stop()

"""The WhatsApp Web gateway as a process: ``verdigris serve`` keeps ``verdigris wa-gateway`` running,
and a gateway killed with ``kill -9`` in the middle of a stream of sends loses no accepted message.

No WhatsApp session is ever started here (no instance is linked through the real gateway), so
nothing tries to reach WhatsApp; the stream of sends goes through the fake gateway run as a child
process (tests/fake_wa_gateway.py), which can be killed like the real one.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from harness import Server, create_postgres_database, server_env, wait_for
from sandbox_kit import wait_until
from verdigris.instances import service as instances

FAKE = Path(__file__).parent / "fake_wa_gateway.py"


@pytest.mark.subprocess
def test_serve_starts_the_gateway_and_starts_it_again_after_kill_9(make_server: Any, tmp_path: Path) -> None:
    srv: Server = make_server(
        env={"VERDIGRIS_WHATSAPP_WEB_ENABLED": "true", "VERDIGRIS_WHATSAPP_WEB_GATEWAY": "true"},
        data_dir=tmp_path / "s",
    )
    channel = srv.core.channels["whatsapp_web"]
    wait_until(channel.link.connected.is_set, timeout=60)
    for name in ("wa-gateway.sock", "wa-gateway.secret"):
        assert stat.S_IMODE((srv.data_dir / name).stat().st_mode) == 0o600, name
    first = channel.supervisor.process
    os.kill(first.pid, signal.SIGKILL)
    wait_until(
        lambda: channel.supervisor.starts == 2 and channel.supervisor.process.pid != first.pid, timeout=60
    )
    wait_until(channel.link.connected.is_set, timeout=60)
    assert srv.wire(srv.instance(0), "getStateInstance").status_code == 200  # the server never stopped
    second = channel.supervisor.process
    srv.stop()
    assert second.returncode is not None  # stopped with the server


def start_fake(directory: Path) -> subprocess.Popen[str]:
    fake = subprocess.Popen(
        [sys.executable, str(FAKE), str(directory)],
        env=server_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert fake.stdout is not None and fake.stdout.readline().strip() == "ready"
    return fake


def sent_texts(directory: Path) -> list[str]:
    log = directory / "sent.jsonl"
    if not log.exists():
        return []
    return [json.loads(line)["message"]["text"] for line in log.read_text().splitlines() if line.strip()]


@pytest.mark.subprocess
def test_a_gateway_killed_mid_stream_loses_no_accepted_message(make_server: Any, tmp_path: Path) -> None:
    world = tmp_path / "wa"
    world.mkdir()
    fake = start_fake(world)
    srv: Server = make_server(
        env={
            "VERDIGRIS_WHATSAPP_WEB_ENABLED": "true",
            "VERDIGRIS_WHATSAPP_WEB_GATEWAY": "false",
            "VERDIGRIS_WHATSAPP_WEB_SOCKET": str(world / "wa.sock"),
            "VERDIGRIS_WHATSAPP_WEB_SECRET_FILE": str(world / "wa.secret"),
        },
        data_dir=tmp_path / "s",
    )
    try:
        inst = srv.new_instance("--channel", "whatsapp_web")
        api = srv.api(inst)
        assert fake.stdin is not None and fake.stdout is not None
        fake.stdin.write(json.dumps({"scan": [str(inst["idInstance"]), "79990002222"]}) + "\n")
        fake.stdin.flush()
        assert fake.stdout.readline().strip() == "done"
        wait_until(lambda: api.account.getStateInstance().data == {"stateInstance": "authorized"})

        # A pause between sends, so that the kill lands in the middle of the stream.
        assert api.account.setSettings({"delaySendMessagesMilliseconds": 100}).code == 200
        texts = [f"order {n}" for n in range(40)]
        ids = [api.sending.sendMessage("79995550009@c.us", text).data["idMessage"] for text in texts]
        wait_until(lambda: len(sent_texts(world)) >= 5)
        fake.kill()  # kill -9 while the stream goes out
        fake.wait()
        assert len(set(sent_texts(world))) < len(texts)  # the kill did cut the stream
        fake = start_fake(world)  # the same world again; the server reconnects by itself

        wait_until(lambda: set(sent_texts(world)) == set(texts), timeout=120)
        statuses = {
            api.journals.getMessage("79995550009@c.us", id_message).data["statusMessage"]
            for id_message in ids
        }
        wait_until(
            lambda: (
                {
                    api.journals.getMessage("79995550009@c.us", id_message).data["statusMessage"]
                    for id_message in ids
                }
                == {"delivered"}
            ),
            timeout=60,
        )
        assert "failed" not in statuses
        # At least once: a send cut off by the kill may have gone out twice, nothing more.
        assert len(sent_texts(world)) <= len(texts) + 1
    finally:
        fake.kill()
        fake.wait()


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.subprocess
def test_the_gateway_ends_with_a_server_killed_with_kill_9(make_server: Any, tmp_path: Path) -> None:
    """An orphaned gateway would go on running sessions whose leases nobody renews."""
    srv: Server = make_server(
        env={"VERDIGRIS_WHATSAPP_WEB_ENABLED": "true", "VERDIGRIS_WHATSAPP_WEB_GATEWAY": "true"},
        data_dir=tmp_path / "s",
        subprocess=True,
    )
    assert srv.proc is not None
    server_pid = srv.proc.pid
    gateways = wait_until(lambda: children(server_pid), timeout=60)
    assert all(alive(pid) for pid in gateways)
    srv.kill()
    wait_until(lambda: not any(alive(pid) for pid in gateways), timeout=30)


def can_unshare() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(["unshare", "-rn", "true"]).returncode == 0


@pytest.mark.subprocess
@pytest.mark.skipif(not can_unshare(), reason="needs an empty network namespace (unshare -rn)")
def test_the_real_gateway_without_a_network_refuses_linking_and_stays_up(
    make_server: Any, tmp_path: Path
) -> None:
    """neonize's real library in an empty network namespace (nothing can reach WhatsApp): a qr
    request starts a real session, which cannot connect; the answer says so and the gateway lives."""
    world = tmp_path / "w"
    world.mkdir()
    gateway = subprocess.Popen(
        ["unshare", "-rn", sys.executable, "-m", "verdigris", "wa-gateway",
         "--socket", str(world / "wa.sock"), "--secret-file", str(world / "wa.secret"),
         "--store-dir", str(world / "stores"), "--qr-wait-seconds", "3"],
        env=server_env(),
    )  # fmt: skip
    try:
        wait_until(lambda: (world / "wa.sock").exists())
        srv: Server = make_server(
            env={
                "VERDIGRIS_WHATSAPP_WEB_ENABLED": "true",
                "VERDIGRIS_WHATSAPP_WEB_GATEWAY": "false",
                "VERDIGRIS_WHATSAPP_WEB_SOCKET": str(world / "wa.sock"),
                "VERDIGRIS_WHATSAPP_WEB_SECRET_FILE": str(world / "wa.secret"),
            },
            data_dir=tmp_path / "s",
        )
        wait_until(srv.core.channels["whatsapp_web"].link.connected.is_set)
        inst = srv.new_instance("--channel", "whatsapp_web")
        for _ in range(2):
            r = srv.wire(inst, "qr")
            assert r.status_code == 503 and "linking is not possible right now" in r.text, r.text
            assert r.headers["Retry-After"] == "5"  # temporary: worth a retry, unlike a 501
            assert gateway.poll() is None  # the gateway is still there
        store = world / "stores" / f"{inst['idInstance']}.sqlite3"
        assert stat.S_IMODE(store.stat().st_mode) == 0o600
        assert srv.wire(inst, "getStateInstance").json() == {"stateInstance": "notAuthorized"}
    finally:
        gateway.terminate()
        gateway.wait(30)


@pytest.mark.subprocess
@pytest.mark.skipif(not can_unshare(), reason="needs an empty network namespace (unshare -rn)")
@pytest.mark.skipif(not Path("/var/run/postgresql").exists(), reason="needs PostgreSQL's local socket")
def test_the_real_gateway_keeps_session_stores_in_postgresql(make_server: Any, tmp_path: Path) -> None:
    """VERDIGRIS_WHATSAPP_WEB_SESSION_STORE=postgres: neonize's real library makes whatsmeow's
    store of a session in a schema of its own in the server's database (no SQLite file), and a
    logout drops it. The gateway reaches PostgreSQL by its local socket: it runs
    in an empty network namespace (nothing can reach WhatsApp)."""
    database = create_postgres_database().rsplit("/", 1)[1]
    over_socket = f"postgresql+asyncpg://postgres@/{database}?host=/var/run/postgresql"
    world = tmp_path / "w"
    world.mkdir()
    env = {
        **server_env(),
        "VERDIGRIS_DATABASE_URL": over_socket,
        "VERDIGRIS_WHATSAPP_WEB_SESSION_STORE": "postgres",
    }
    gateway = subprocess.Popen(
        ["unshare", "-rn", sys.executable, "-m", "verdigris", "wa-gateway",
         "--socket", str(world / "wa.sock"), "--secret-file", str(world / "wa.secret"),
         "--store-dir", str(world / "stores"), "--qr-wait-seconds", "3"],
        env=env,
    )  # fmt: skip
    try:
        wait_until(lambda: (world / "wa.sock").exists())
        srv: Server = make_server(
            env={
                "VERDIGRIS_WHATSAPP_WEB_ENABLED": "true",
                "VERDIGRIS_WHATSAPP_WEB_GATEWAY": "false",
                "VERDIGRIS_WHATSAPP_WEB_SOCKET": str(world / "wa.sock"),
                "VERDIGRIS_WHATSAPP_WEB_SECRET_FILE": str(world / "wa.secret"),
            },
            data_dir=tmp_path / "s",
        )
        wait_until(srv.core.channels["whatsapp_web"].link.connected.is_set)
        inst = srv.new_instance("--channel", "whatsapp_web")
        r = srv.wire(inst, "qr")
        assert r.status_code == 503 and "linking is not possible right now" in r.text, r.text
        schema = f"waweb_session_{inst['idInstance']}"
        tables = asyncio.run(_tables(database, schema))
        assert {"whatsmeow_device", "whatsmeow_sessions"} <= tables
        assert not (world / "stores" / f"{inst['idInstance']}.sqlite3").exists()
        assert srv.wire(inst, "getStateInstance").status_code == 200
        assert gateway.poll() is None
        assert srv.wire(inst, "logout").status_code == 200  # the session's store goes with it
        wait_until(lambda: not asyncio.run(_tables(database, schema)), timeout=30)
    finally:
        gateway.terminate()
        gateway.wait(30)
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"], check=False, capture_output=True)  # fmt: skip


async def _tables(database: str, schema: str) -> set[str]:
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{database}")
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
        )
    finally:
        await conn.close()
    return {str(r["table_name"]) for r in rows}


# Put on the gateway's PYTHONPATH by the crash test: while ``panic-on-resume`` exists in the store
# directory, resuming a session (``open``) first stores an incoming message event on disk (the
# gateway's outbox, as neonize's callback does) and then makes the real library panic exactly as a
# stale session's resume does: a Go panic that aborts the process (exit 134, no Python exception).
# Without the file, ``open`` starts nothing, so nothing ever tries to reach WhatsApp.
PANIC_ON_RESUME = """
import sys

if "wa-gateway" in sys.argv:
    import os
    import time

    from verdigris.channels.whatsapp_web import gateway

    async def _m_open(self, s, params):
        if (self.store_dir / "panic-on-resume").exists():
            event = {"id": "A5F0BEFOREPANIC1", "chat": "79995550001@s.whatsapp.net",
                     "sender": "79995550001@s.whatsapp.net", "sender_name": "Ann", "kind": "text",
                     "text": "sent just before the crash", "timestamp_ms": int(time.time() * 1000)}
            self.emit_threadsafe(s.name, "message", event)
            s.client.get_me()  # a real Go panic: neonize's GetMe on a client that never connected
        (self.store_dir / f"resumed-by-{os.getpid()}").touch()
        return {}

    gateway.Gateway._m_open = _m_open
"""


@pytest.mark.subprocess
def test_a_real_go_panic_of_the_gateway_leaves_the_server_up_and_loses_nothing(
    make_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The supervised gateway, with neonize's real library, aborts on a real Go panic each time it
    resumes a session (a crash loop, as with a stale session), after a kill -9 to start it. The
    server keeps answering and accepting; the gateway is started again with a growing pause; when
    the cause is gone it stays up, and the event it stored before each panic arrives once."""
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(PANIC_ON_RESUME)
    monkeypatch.setenv("PYTHONPATH", str(inject))
    srv: Server = make_server(
        env={"VERDIGRIS_WHATSAPP_WEB_ENABLED": "true", "VERDIGRIS_WHATSAPP_WEB_GATEWAY": "true"},
        data_dir=tmp_path / "s",
    )
    channel = srv.core.channels["whatsapp_web"]
    supervisor = channel.supervisor
    wait_until(channel.link.connected.is_set, timeout=60)
    inst = srv.new_instance("--channel", "whatsapp_web")
    api = srv.api(inst)
    instance_id = int(inst["idInstance"])

    async def linked() -> None:
        rec = await srv.core.instances.get(instance_id)
        async with srv.core.tx() as tx:
            await instances.set_state(tx, rec, instances.STARTING, "79990001111@c.us")
            await instances.set_state(tx, rec, instances.AUTHORIZED, "79990001111@c.us")

    assert srv.loop is not None
    asyncio.run_coroutine_threadsafe(linked(), srv.loop).result(30)
    trigger = srv.data_dir / "wa-sessions" / "panic-on-resume"
    trigger.touch()
    os.kill(supervisor.process.pid, signal.SIGKILL)  # its restart resumes the session: the crash loop begins
    wait_until(lambda: len(supervisor.exits) >= 3, timeout=120)
    # kill -9 first, then the real panics: aborted (SIGABRT, exit 134), no Python exception.
    assert supervisor.exits[0] == -signal.SIGKILL
    assert set(supervisor.exits[1:]) == {-signal.SIGABRT}, supervisor.exits
    # The server answers and accepts meanwhile; what it accepted waits, never failed.
    assert api.account.getStateInstance().code == 200
    sent = api.sending.sendMessage("79995550001@c.us", "accepted during the crash loop")
    assert sent.code == 200
    trigger.unlink()
    got = wait_for(api, lambda b: b.get("idMessage") == "A5F0BEFOREPANIC1", timeout=180)
    assert got["messageData"]["textMessageData"]["textMessage"] == "sent just before the crash"
    # The next gateway resumes the session without panicking, and is still there after it.
    wait_until(
        lambda: (srv.data_dir / "wa-sessions" / f"resumed-by-{supervisor.process.pid}").exists(), timeout=180
    )
    resumed = srv.data_dir / "wa-sessions" / f"resumed-by-{supervisor.process.pid}"
    assert resumed.exists() and supervisor.process.returncode is None
    history = api.journals.getChatHistory("79995550001@c.us", 10).data
    assert [m["idMessage"] for m in history if m["type"] == "incoming"] == ["A5F0BEFOREPANIC1"]
    status = api.journals.getMessage("79995550001@c.us", sent.data["idMessage"]).data["statusMessage"]
    assert status in ("pending", "queued")  # offline: waiting for the session, not failed
    assert supervisor.process.returncode is None and srv.wire(inst, "getStateInstance").status_code == 200


@pytest.mark.subprocess
@pytest.mark.skipif(not can_unshare(), reason="needs an empty network namespace (unshare -rn)")
def test_the_live_check_says_plainly_when_whatsapp_cannot_be_reached() -> None:
    """``verdigris wa-gateway check`` with neonize's real library and no network: it fails, says
    why, and exits non-zero (with internet it links a number and sends it a message)."""
    done = subprocess.run(
        ["unshare", "-rn", sys.executable, "-m", "verdigris", "wa-gateway", "check", "--wait-seconds", "3"],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "the live check failed: WhatsApp did not offer a QR code in time" in done.stdout

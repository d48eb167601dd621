"""``verdigris serve --workers N`` (issue 17, item 5): N processes on one port and one PostgreSQL store."""

from __future__ import annotations

import os
import signal
import subprocess as sp
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from harness import cli_process, create_postgres_database, free_port, server_env
from verdigris.workers import child_roles

on_postgres = pytest.mark.skipif(
    os.environ.get("VERDIGRIS_TEST_DB") != "postgres", reason="several processes share a PostgreSQL store"
)


def test_every_child_keeps_the_role_the_leases_share_the_work() -> None:
    assert child_roles("all", 3) == ["all", "all", "all"]
    assert child_roles("worker", 2) == ["worker", "worker"]


def test_workers_need_postgresql(tmp_path: Path) -> None:
    out = sp.run(
        [sys.executable, "-m", "verdigris", "serve", "--workers", "2", "--data-dir", str(tmp_path)],
        env=server_env({}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "--workers needs PostgreSQL" in out.stderr


def children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@on_postgres
@pytest.mark.subprocess
def test_two_workers_share_the_port_and_the_messages_go_through(tmp_path: Path) -> None:
    env = {"VERDIGRIS_DATABASE_URL": create_postgres_database(), "VERDIGRIS_RATE_LIMIT_MULTIPLIER": "100000"}
    port = free_port()
    data_dir = tmp_path / "d"
    log = open(tmp_path / "server.log", "ab")
    proc = sp.Popen(
        [
            sys.executable,
            "-m",
            "verdigris",
            "serve",
            "--workers",
            "2",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        env=server_env(env),
        stdout=log,
        stderr=sp.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while len(children_of(proc.pid)) < 2 or not _healthy(port):
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.2)
        demo = cli_process(data_dir, "demo", "--json", "--new-passwords", "--port", str(port), env=env)
        a, b = demo["instances"][0], demo["instances"][1]
        base = f"http://127.0.0.1:{port}"

        def send(n: int) -> str:
            # A new connection each time: the kernel hands connections to both processes.
            url = f"{base}/waInstance{a['idInstance']}/sendMessage/{a['apiTokenInstance']}"
            r = httpx.post(url, json={"chatId": b["wid"], "message": f"via workers {n}"}, timeout=30)
            assert r.status_code == 200, r.text
            return str(r.json()["idMessage"])

        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(send, range(40)))
        got: set[str] = set()
        deadline = time.monotonic() + 90
        with httpx.Client(base_url=base, timeout=30) as client:
            inst, token = b["idInstance"], b["apiTokenInstance"]
            while not set(ids) <= got and time.monotonic() < deadline:
                r = client.get(f"/waInstance{inst}/receiveNotification/{token}", params={"receiveTimeout": 5})
                assert r.status_code == 200, r.text
                note = r.json()
                if note is None:
                    continue
                if note["body"]["typeWebhook"] == "incomingMessageReceived":
                    got.add(note["body"]["idMessage"])
                client.delete(f"/waInstance{inst}/deleteNotification/{token}/{note['receiptId']}")
        assert set(ids) <= got
        # Both processes answer on the port: the first sent everything, the api process nothing
        # (each /metrics call is a new connection, which either process may take).
        sent = {_metric(port, "verdigris_messages_sent_total") for _ in range(40)}
        assert 0 in sent and max(sent) >= len(ids), sent
        assert len(children_of(proc.pid)) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        log.close()


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _metric(port: int, name: str) -> float:
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0

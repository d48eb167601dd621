"""``verdigris serve --role api|worker`` (issue 15, item 2): an API process accepts and answers, a
worker process on the same PostgreSQL database sends and pushes webhooks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness import Server
from verdigris.app import create_app
from verdigris.config import Settings
from webhook_receivers import ScriptedReceiver

on_postgres = pytest.mark.skipif(
    os.environ.get("VERDIGRIS_TEST_DB") != "postgres", reason="several processes share a PostgreSQL store"
)


def counter(srv: Server, name: str) -> float:
    for line in httpx.get(f"{srv.url}/metrics", timeout=30).text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@on_postgres
@pytest.mark.subprocess
def test_an_api_process_accepts_and_a_worker_sends_and_pushes(make_server: Any) -> None:
    hook = ScriptedReceiver().start()
    try:
        api: Server = make_server(subprocess=True, env={"VERDIGRIS_ROLE": "api"})
        worker: Server = make_server(
            subprocess=True,
            env={"VERDIGRIS_DATABASE_URL": api.env["VERDIGRIS_DATABASE_URL"], "VERDIGRIS_ROLE": "worker"},
        )
        sender, receiver = worker.instance(0), worker.instance(1)
        # A worker answers the balancer's probes only.
        refused = worker.wire(sender, "getStateInstance")
        assert refused.status_code == 503 and "--role worker" in refused.json()["message"]
        assert httpx.get(f"{worker.url}/health", timeout=30).status_code == 200
        for process in (api, worker):  # the database and the media folder answer
            assert httpx.get(f"{process.url}/ready", timeout=30).json() == {"status": "ready"}

        assert api.api(receiver).account.setSettings({"webhookUrl": hook.url}).code == 200
        sent = api.api(sender).sending.sendMessage(receiver["wid"], "accepted by the API process")
        assert sent.code == 200, sent.error
        # The worker sends it (the receiving instance gets it) and pushes it to the webhook.
        hook.received.wait_for(lambda r: "accepted by the API process" in r.texts(), timeout=60)
        assert counter(api, "verdigris_messages_sent_total") == 0
        assert counter(worker, "verdigris_messages_sent_total") >= 1
        assert counter(api, "verdigris_messages_accepted_total") >= 1
    finally:
        hook.stop()


def test_roles_need_postgresql(tmp_path: Path) -> None:
    for role in ("api", "worker"):
        with pytest.raises(ValueError, match=f"--role {role} needs PostgreSQL"):
            create_app(Settings(data_dir=tmp_path, database_url="", role=role))

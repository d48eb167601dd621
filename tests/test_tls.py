"""HTTPS (T-26): the server terminates TLS itself on its one port; the official SDK, the console
(Secure cookies) and the sandbox API work over it, and plain HTTP is not served there."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from console_client import Console
from harness import Server

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")


def self_signed(folder: Path) -> tuple[str, str]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert),
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


def test_https_on_the_one_port(make_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = self_signed(tmp_path)
    # The clients' idle TLS connections never answer the server's close_notify on shutdown: the
    # server waits its grace time for them (the 30 s SSL shutdown timeout before it had one).
    srv: Server = make_server(
        env={
            "VERDIGRIS_TLS_CERTFILE": cert,
            "VERDIGRIS_TLS_KEYFILE": key,
            "VERDIGRIS_SHUTDOWN_GRACE_SECONDS": "1",
        }
    )
    assert srv.url.startswith("https://")
    inst = srv.instance(0)
    assert inst["apiUrl"] == srv.url  # the printed URLs are the https ones

    # The official SDK (requests) trusts the server's certificate through the usual variable.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)
    api = srv.api(inst)
    state = api.account.getStateInstance()
    assert state.code == 200 and state.data == {"stateInstance": "authorized"}
    sent = api.sending.sendMessage("79990000002@c.us", "over TLS")
    assert sent.code == 200 and sent.data["idMessage"]

    # Console cookies are Secure when the request came over TLS.
    console = Console(srv)
    console.http = httpx.Client(base_url=srv.url, verify=srv.verify, timeout=60)
    r = console.login("demo", srv.demo["console"]["password"])
    assert r.status_code == 303 and "secure" in r.headers["set-cookie"].lower()

    # Browsers are told to keep to HTTPS, on every face (issue 16, item 12).
    for path in ("/health", "/console/login", f"/waInstance{inst['idInstance']}/getStateInstance/x"):
        answer = httpx.get(srv.url + path, verify=srv.verify, timeout=30)
        assert answer.headers.get("strict-transport-security") == "max-age=31536000", path

    # Plain HTTP on the same port gets no answer it could mistake for a service.
    with pytest.raises(httpx.HTTPError):
        httpx.get(srv.url.replace("https://", "http://") + "/health", timeout=5)


def test_half_a_tls_configuration_is_refused(tmp_path: Path) -> None:
    import os
    import sys

    cert, _ = self_signed(tmp_path)
    env = {**os.environ, "VERDIGRIS_TLS_CERTFILE": cert, "VERDIGRIS_DATA_DIR": str(tmp_path / "d")}
    out = subprocess.run(
        [sys.executable, "-m", "verdigris", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0 and "VERDIGRIS_TLS_KEYFILE" in out.stderr

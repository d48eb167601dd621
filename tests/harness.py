"""Start real Verdigris servers for tests and talk to them.

A :class:`Server` is a ``verdigris serve`` subprocess (uvicorn on a free port, its own temp data
dir), so tests exercise exactly what users run. Helpers wrap the official SDK and the sandbox
control API.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SRC = str(Path(__file__).resolve().parents[1] / "src")
CHROMIUM = "/usr/bin/chromium"  # Debian's package; Playwright's own browser download fails here


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    # Tests and benchmarks may send without the documented 500 ms gap.
    env.setdefault("VERDIGRIS_SEND_DELAY_MIN_MS", "0")
    env.setdefault("VERDIGRIS_SEND_DELAY_DEFAULT_MS", "0")
    env.setdefault("VERDIGRIS_LOG_LEVEL", "warning")
    # Rate limits stay on in tests, scaled up tenfold so that tests calling a 1-rps method a few
    # times in a row (bad-input checks over raw HTTP) are not refused; tests of the documented
    # table itself start their own server with VERDIGRIS_RATE_LIMIT_MULTIPLIER=1.
    env.setdefault("VERDIGRIS_RATE_LIMIT_MULTIPLIER", "10")
    # Test webhook receivers and file servers listen on 127.0.0.1, which the outbound-URL rule
    # refuses by default (docs/security.md); tests of the rule itself set this to "false".
    env.setdefault("VERDIGRIS_OUTBOUND_ALLOW_PRIVATE", "true")
    env.update(extra or {})
    return env


def create_postgres_database() -> str:
    """A new, empty PostgreSQL database for one test server (the machine's local server, trust auth)."""
    name = f"vt_{os.getpid()}_{time.time_ns()}"
    host = os.environ.get("VERDIGRIS_TEST_PG_HOST", "127.0.0.1")
    subprocess.run(
        ["psql", "-h", host, "-U", "postgres", "-d", "postgres", "-qc", f"CREATE DATABASE {name}"], check=True
    )
    return f"postgresql+asyncpg://postgres@{host}:5432/{name}"


def cli(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    """Run ``verdigris <args> --data-dir <dir>`` and parse its JSON output."""
    out = subprocess.run(
        [sys.executable, "-m", "verdigris", *args, "--data-dir", str(data_dir)],
        env=server_env(env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0:
        raise RuntimeError(f"verdigris {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout)


@dataclass
class Server:
    data_dir: Path
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    demo: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        scheme = "https" if self.env.get("VERDIGRIS_TLS_CERTFILE") else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def verify(self) -> Any:
        """What an HTTP client needs to trust this server (its own certificate when it speaks TLS)."""
        cert = self.env.get("VERDIGRIS_TLS_CERTFILE")
        return ssl.create_default_context(cafile=cert) if cert else True

    def start(self, timeout: float = 60) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.environ.get("VERDIGRIS_TEST_DB") == "postgres" and "VERDIGRIS_DATABASE_URL" not in self.env:
            self.env["VERDIGRIS_DATABASE_URL"] = create_postgres_database()
        log = open(self.data_dir / "server.log", "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "verdigris",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
            ],
            env=server_env(self.env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1, verify=self.verify).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"server did not come up:\n{self.log()}")
        # Demo passwords are printed only when made: give the demo accounts fresh ones for the tests.
        self.demo = cli(
            self.data_dir, "demo", "--json", "--new-passwords", "--port", str(self.port), env=self.env
        )
        return self

    def log(self) -> str:
        path = self.data_dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def drop_database(self) -> None:
        """Drop the PostgreSQL database this test server was given (fixtures call this at the end)."""
        url = self.env.get("VERDIGRIS_DATABASE_URL", "")
        name = url.rsplit("/", 1)[-1]
        if url.startswith("postgresql") and name.startswith("vt_"):
            host = os.environ.get("VERDIGRIS_TEST_PG_HOST", "127.0.0.1")
            subprocess.run(
                [
                    "psql",
                    "-h",
                    host,
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-qc",
                    f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",
                ],
                check=False,
                capture_output=True,
            )

    def kill(self) -> None:
        """``kill -9``: no shutdown code runs."""
        self.stop(signal.SIGKILL)

    # --- conveniences ---------------------------------------------------------------------------

    def instance(self, index: int) -> dict[str, Any]:
        return self.demo["instances"][index]

    def api(self, inst: dict[str, Any], **kwargs: Any) -> Any:
        from whatsapp_api_client_python import API

        return API.GreenAPI(
            str(inst["idInstance"]), inst["apiTokenInstance"], host=self.url, media=self.url, **kwargs
        )

    def wire(self, inst: dict[str, Any], method: str, *, verb: str = "GET", **kwargs: Any) -> httpx.Response:
        url = f"{self.url}/waInstance{inst['idInstance']}/{method}/{inst['apiTokenInstance']}"
        return httpx.request(verb, url, timeout=90, verify=self.verify, **kwargs)

    def sandbox(self, verb: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.demo['sandbox']['token']}"}
        return httpx.request(
            verb, f"{self.url}/sandbox{path}", headers=headers, timeout=30, verify=self.verify, **kwargs
        )

    def new_instance(self, *args: str) -> dict[str, Any]:
        """``verdigris instances create <args>`` against this server's data dir."""
        inst: dict[str, Any] = cli(self.data_dir, "instances", "create", *args, env=self.env)
        return inst

    def new_phone(self, number: str, name: str = "") -> dict[str, Any]:
        r = self.sandbox("POST", "/phones", json={"number": number, "name": name})
        r.raise_for_status()
        return dict(r.json())


def decode_qr(png_base64: str) -> str:
    """Read a QR code the way a phone camera would: decode the PNG image."""
    import zxingcpp
    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(png_base64)))
    results = zxingcpp.read_barcodes(image)
    assert results, "no QR code found in the image"
    return str(results[0].text)


def check_contract(body: Any) -> None:
    """Every notification a test reads must meet the official contract (tests/contract)."""
    from contract import notifications as contract

    if isinstance(body, dict) and contract.known(str(body.get("typeWebhook"))):
        contract.validate(body)


def drain(api: Any, timeout: int = 5) -> list[dict[str, Any]]:
    """Receive and delete every waiting notification; returns their bodies in order.

    Each body is checked against the notification contract on the way.
    """
    bodies = []
    while True:
        r = api.receiving.receiveNotification(timeout)
        assert r.code == 200, r.error
        if r.data is None:
            return bodies
        check_contract(r.data["body"])
        bodies.append(r.data["body"])
        assert api.receiving.deleteNotification(r.data["receiptId"]).data == {"result": True}


def wait_for(api: Any, predicate: Any, timeout: float = 30) -> dict[str, Any]:
    """Receive (and delete) notifications until one matches ``predicate``; return its body.

    Every body read is checked against the notification contract on the way.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = api.receiving.receiveNotification(5)
        assert r.code == 200, r.error
        if r.data is None:
            continue
        api.receiving.deleteNotification(r.data["receiptId"])
        check_contract(r.data["body"])
        if predicate(r.data["body"]):
            return dict(r.data["body"])
    raise AssertionError("no matching notification arrived")

"""Start real Verdigris servers for tests and talk to them.

A :class:`Server` is the real application on a real port with its own temp data dir: by default it
runs inside the test process (uvicorn in a background thread with its own event loop), so the
official SDKs, raw HTTP and browsers reach it exactly as they reach ``verdigris serve``. A test that
must cross a process boundary (``kill -9``, a cluster of processes, reading the server's own output)
asks for ``Server(..., subprocess=True)`` / ``make_server(subprocess=True)``: that is a
``verdigris serve`` child process, as users run it.

Fresh stores are copies of one store migrated once per test process (SQLite: a file copy;
PostgreSQL: ``CREATE DATABASE ... TEMPLATE``), and the ``verdigris`` CLI commands the tests use
(``demo``, ``instances create``, ``partner-token``) run in-process against the running server.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import io
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess as sp
import sys
import tempfile
import threading
import time
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SRC = str(Path(__file__).resolve().parents[1] / "src")
CHROMIUM = "/usr/bin/chromium"  # Debian's package; Playwright's own browser download fails here
SQLITE_FILE = "verdigris.sqlite3"


def cheap_password_hashes() -> None:
    """In-process servers hash passwords with argon2id's cheapest parameters.

    The production parameters (64 MiB, 3 passes) cost 0.1 to 1.5 s of CPU per hash or check on this
    2-core machine, and the suite checks passwords thousands of times (every console login, every
    HTTP Basic call of the licensing API). The hashes stay real argon2id and are checked by the same
    code; servers started as child processes keep the production parameters, and either kind of
    server verifies the other's hashes (the parameters travel inside each hash).
    """
    from argon2 import PasswordHasher

    from verdigris.accounts import service

    service._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def screenshots(kind: str) -> Path:
    """Where browser tests put their screenshots: docs/<kind>/ when ``VERDIGRIS_SCREENSHOTS=1``
    (regenerating the documentation's pictures, see docs/development.md), otherwise a scratch
    directory, so an ordinary test run leaves the committed pictures alone."""
    if os.environ.get("VERDIGRIS_SCREENSHOTS") == "1":
        target = Path(__file__).resolve().parents[1] / "docs" / kind
    else:
        target = Path(tempfile.gettempdir()) / f"verdigris-screenshots-{os.getpid()}" / kind
    target.mkdir(parents=True, exist_ok=True)
    return target


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
    # "Nothing more is waiting" checks long-poll for a second, not GREEN-API's minimum of five.
    env.setdefault("VERDIGRIS_RECEIVE_TIMEOUT_MIN", "1")
    env.update(extra or {})
    return env


def settings_for(env: dict[str, str], **values: Any) -> Any:
    """The ``Settings`` a ``verdigris`` process started with ``env`` would read (``values`` win, as
    command-line options do)."""
    from verdigris.config import Settings

    given: dict[str, Any] = {}
    for key, value in env.items():
        name = key.removeprefix("VERDIGRIS_").lower()
        if not key.startswith("VERDIGRIS_") or name not in Settings.model_fields:
            continue
        kind = typing.get_origin(Settings.model_fields[name].annotation)
        given[name] = json.loads(value) if kind in (dict, list, set, tuple) else value
    given.update({k: v for k, v in values.items() if v is not None})
    return Settings(**given)


# --- fresh stores: migrated once per test process, then copied ------------------------------------

_templates: dict[str, str] = {}
_template_lock = threading.Lock()


def pg_host() -> str:
    return os.environ.get("VERDIGRIS_TEST_PG_HOST", "127.0.0.1")


def psql(sql: str, *, check: bool = True) -> None:
    sp.run(
        ["psql", "-h", pg_host(), "-U", "postgres", "-d", "postgres", "-qc", sql],
        check=check,
        capture_output=not check,
    )


def _migrate(url: str) -> None:
    from verdigris.store.migrate import upgrade

    in_thread(lambda: upgrade(url))  # Alembic's env.py calls asyncio.run


def _sqlite_template() -> Path:
    """A data dir whose SQLite store has every migration applied (made once per process)."""
    with _template_lock:
        if "sqlite" not in _templates:
            root = Path(tempfile.mkdtemp(prefix="verdigris-template-"))
            atexit.register(shutil.rmtree, root, True)
            _migrate(f"sqlite+aiosqlite:///{root / SQLITE_FILE}")
            _templates["sqlite"] = str(root)
        return Path(_templates["sqlite"])


def _postgres_template() -> str:
    """The name of a PostgreSQL database with every migration applied (made once per process)."""
    with _template_lock:
        if "postgres" not in _templates:
            name = f"vt_template_{os.getpid()}_{time.time_ns()}"
            psql(f"CREATE DATABASE {name}")
            atexit.register(psql, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", check=False)
            _migrate(f"postgresql+asyncpg://postgres@{pg_host()}:5432/{name}")
            _templates["postgres"] = name
        return _templates["postgres"]


def create_postgres_database() -> str:
    """A new PostgreSQL database for one test server (the machine's local server, trust auth),
    already migrated: a copy of the per-process template."""
    name = f"vt_{os.getpid()}_{time.time_ns()}"
    psql(f"CREATE DATABASE {name} TEMPLATE {_postgres_template()}")
    return f"postgresql+asyncpg://postgres@{pg_host()}:5432/{name}"


def seed_sqlite(data_dir: Path) -> None:
    """Give a new data dir a migrated SQLite store (leaves an existing store alone)."""
    target = data_dir / SQLITE_FILE
    if not target.exists():
        shutil.copyfile(_sqlite_template() / SQLITE_FILE, target)


# --- the verdigris CLI, in-process ----------------------------------------------------------------

_cli_lock = threading.Lock()
_running: dict[Path, Server] = {}


def _run_on(loop: asyncio.AbstractEventLoop, coro: Awaitable[Any], timeout: float = 120) -> Any:
    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)  # type: ignore[arg-type]


def run_on(loop: asyncio.AbstractEventLoop, coro: Awaitable[Any], timeout: float = 120) -> Any:
    """Run a coroutine on an in-process server's event loop (``srv.loop``) and return its result."""
    return _run_on(loop, coro, timeout)


def in_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on a helper thread (it may call ``asyncio.run`` even when the caller is inside an
    event loop, as async tests are)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    worker = threading.Thread(target=target)
    worker.start()
    worker.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def cli(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    """``verdigris <args> --data-dir <dir>``, parsed from its JSON output.

    The command runs in this process: against the live application when a server of this test
    process serves ``data_dir`` (as a separate CLI process would, on the same store), otherwise on a
    core of its own.
    """
    from verdigris import cli as verdigris_cli

    command = typer_command()
    live = _running.get(Path(data_dir).resolve())
    settings_env = server_env(env)

    def run_with_core(settings: Any, action: Callable[[Any], Awaitable[Any]]) -> Any:
        # An explicit --port/--public-url describes another server: the command builds its own core.
        own_urls = {"public_url", "port"} & settings.model_fields_set
        if live is not None and live.core is not None and live.loop is not None and not own_urls:
            return _run_on(live.loop, action(live.core))
        return in_thread(lambda: original_run_with_core(settings, action))

    original_run_with_core = verdigris_cli._run_with_core
    # The command reads its settings from ``env`` (not this process's environment), runs its action
    # as above and leaves the test process's log setup alone.
    patches: dict[str, Any] = {
        "Settings": lambda **values: settings_for(settings_env, **values),
        "_run_with_core": run_with_core,
        "configure_logs": lambda *a, **k: None,
    }
    out = io.StringIO()
    with _cli_lock:
        saved = {name: getattr(verdigris_cli, name) for name in patches}
        for name, value in patches.items():
            setattr(verdigris_cli, name, value)
        try:
            with contextlib.redirect_stdout(out):
                command.main(
                    [*args, "--data-dir", str(data_dir)], prog_name="verdigris", standalone_mode=False
                )
        except Exception as exc:
            if not hasattr(exc, "format_message"):  # not a usage error (click's, as vendored by typer)
                raise
            raise RuntimeError(f"verdigris {' '.join(args)} failed:\n{exc.format_message()}") from None
        finally:
            for name, value in saved.items():
                setattr(verdigris_cli, name, value)
    return json.loads(out.getvalue())


def typer_command() -> Any:
    import typer

    from verdigris import cli as verdigris_cli

    return typer.main.get_command(verdigris_cli.app)


def cli_process(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    """Run ``verdigris <args> --data-dir <dir>`` as a child process and parse its JSON output."""
    out = sp.run(
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
    # True: a ``verdigris serve`` child process (for kill -9, clusters, reading its output).
    subprocess: bool = False
    proc: sp.Popen[bytes] | None = None
    demo: dict[str, Any] = field(default_factory=dict)
    # The in-process application: the app, its core, event loop, uvicorn server and thread.
    app: Any = None
    core: Any = None
    loop: asyncio.AbstractEventLoop | None = None
    _uvicorn: Any = None
    _thread: threading.Thread | None = None
    _http: httpx.Client | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.env.get("VERDIGRIS_TLS_CERTFILE") else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def verify(self) -> Any:
        """What an HTTP client needs to trust this server (its own certificate when it speaks TLS)."""
        cert = self.env.get("VERDIGRIS_TLS_CERTFILE")
        return ssl.create_default_context(cafile=cert) if cert else True

    @property
    def running(self) -> bool:
        if self.subprocess:
            return self.proc is not None and self.proc.poll() is None
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 60) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.environ.get("VERDIGRIS_TEST_DB") == "postgres":
            if "VERDIGRIS_DATABASE_URL" not in self.env:
                self.env["VERDIGRIS_DATABASE_URL"] = create_postgres_database()
        elif "VERDIGRIS_DATABASE_URL" not in self.env:
            seed_sqlite(self.data_dir)
        if self.subprocess:
            self._start_process(timeout)
            self.demo = cli_process(
                self.data_dir, "demo", "--json", "--new-passwords", "--port", str(self.port), env=self.env
            )
        else:
            self._start_in_process(timeout)
            self.demo = cli(
                self.data_dir, "demo", "--json", "--new-passwords", env=self.env
            )  # the live app's own URLs
        return self

    def _start_process(self, timeout: float) -> None:
        log = open(self.data_dir / "server.log", "ab")
        self.proc = sp.Popen(
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
            stderr=sp.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1, verify=self.verify).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not come up:\n{self.log()}")

    def _start_in_process(self, timeout: float) -> None:
        """What ``verdigris serve`` does, on a thread of this process (see ``verdigris.cli.serve``)."""
        import uvicorn
        import uvloop

        from verdigris.app import create_app
        from verdigris.logs import configure as configure_logs

        try:
            settings = settings_for(server_env(self.env), data_dir=self.data_dir, port=self.port)
            configure_logs(settings.log_level, settings.log_format)
            application = create_app(settings)
        except Exception as exc:  # as `verdigris serve` would exit
            raise RuntimeError(f"server did not start: {exc}") from exc
        self.app = application
        self.core = application.state.core
        config = uvicorn.Config(
            application,
            host=settings.host,
            port=settings.port,
            http="httptools",
            log_level="warning",
            access_log=False,
            timeout_keep_alive=75,
            timeout_graceful_shutdown=settings.shutdown_grace_seconds,
            ssl_certfile=settings.tls_certfile or None,
            ssl_keyfile=settings.tls_keyfile or None,
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
        )
        self._uvicorn = server = uvicorn.Server(config)
        self.loop = loop = uvloop.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(server.serve())
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name=f"verdigris-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive():
                raise RuntimeError("server exited early (its error is in the captured log above)")
            if time.monotonic() > deadline:
                raise RuntimeError("server did not come up")
            time.sleep(0.02)
        _running[self.data_dir.resolve()] = self

    def log(self) -> str:
        if not self.subprocess:
            raise RuntimeError("an in-process server has no log of its own: start it with subprocess=True")
        path = self.data_dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        if not self.subprocess:
            if sig != signal.SIGTERM:
                raise RuntimeError("only a subprocess server can be killed: start it with subprocess=True")
            self._stop_in_process()
            return
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except sp.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def _stop_in_process(self) -> None:
        """A clean shutdown, as on SIGTERM: uvicorn stops serving and the lifespan closes the core."""
        if self._thread is None:
            return
        _running.pop(self.data_dir.resolve(), None)
        self._uvicorn.should_exit = True
        self._thread.join(30)
        if self._thread.is_alive():
            self._uvicorn.force_exit = True
            self._thread.join(15)
        self._thread = self._uvicorn = self.loop = self.core = self.app = None

    def drop_database(self) -> None:
        """Drop the PostgreSQL database this test server was given (fixtures call this at the end)."""
        url = self.env.get("VERDIGRIS_DATABASE_URL", "")
        name = url.rsplit("/", 1)[-1]
        if url.startswith("postgresql") and name.startswith("vt_"):
            psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", check=False)

    def kill(self) -> None:
        """``kill -9``: no shutdown code runs (subprocess servers only)."""
        self.stop(signal.SIGKILL)

    # --- conveniences ---------------------------------------------------------------------------

    def instance(self, index: int) -> dict[str, Any]:
        inst: dict[str, Any] = self.demo["instances"][index]
        return inst

    def api(self, inst: dict[str, Any], **kwargs: Any) -> Any:
        from whatsapp_api_client_python import API

        return API.GreenAPI(
            str(inst["idInstance"]), inst["apiTokenInstance"], host=self.url, media=self.url, **kwargs
        )

    @property
    def http(self) -> httpx.Client:
        """One kept-alive client for the tests' raw calls (a new client costs ~40 ms of CPU: it
        loads the CA bundle)."""
        if self._http is None:
            self._http = httpx.Client(verify=self.verify)
        return self._http

    def wire(self, inst: dict[str, Any], method: str, *, verb: str = "GET", **kwargs: Any) -> httpx.Response:
        url = f"{self.url}/waInstance{inst['idInstance']}/{method}/{inst['apiTokenInstance']}"
        return self.http.request(verb, url, timeout=90, **kwargs)

    def sandbox(self, verb: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.demo['sandbox']['token']}"}
        return self.http.request(verb, f"{self.url}/sandbox{path}", headers=headers, timeout=30, **kwargs)

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


def drain(api: Any, timeout: int = 2) -> list[dict[str, Any]]:
    """Receive and delete notifications until none comes for ``timeout`` seconds; returns their
    bodies in order.

    Each body is checked against the notification contract on the way.
    """
    bodies: list[dict[str, Any]] = []
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

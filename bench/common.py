"""Shared pieces of the benchmark runner: servers, a tiny HTTP client, wrk, statistics."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The source tree the servers and the seeding run from: this checkout, or another one that
# bench/compare.py extracted from git to measure it in the same run.
SRC = Path(os.environ.get("VERDIGRIS_BENCH_SRC") or ROOT / "src")
BENCH = Path(__file__).resolve().parent
LUA = BENCH / "lua"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    # Benchmarks run without the documented 500 ms gap between two sends of an instance.
    env["VERDIGRIS_SEND_DELAY_MIN_MS"] = "0"
    env["VERDIGRIS_SEND_DELAY_DEFAULT_MS"] = "0"
    # ... and with the per-instance rate limits (10 calls/s per method by default) raised 100,000
    # times: B2, B5 and B6 call a few instances as fast as they can, and a 429 costs the server
    # almost nothing, so they would measure the limiter. The limiter's check still runs on every call.
    env["VERDIGRIS_RATE_LIMIT_MULTIPLIER"] = "100000"
    env["VERDIGRIS_LOG_LEVEL"] = "warning"
    env.update(extra or {})
    return env


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else float("nan"),
        "mean": statistics.fmean(values) if values else float("nan"),
    }


@dataclass
class Server:
    """A server process (``verdigris serve`` or the baseline app) on a free port."""

    argv: list[str]
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    started_s: float = 0.0

    @classmethod
    def verdigris(cls, data_dir: Path, env: dict[str, str] | None = None, workers: int = 1) -> Server:
        server = cls([], data_dir, env or {})
        server.argv = [
            sys.executable,
            "-m",
            "verdigris",
            "serve",
            "--port",
            str(server.port),
            "--data-dir",
            str(data_dir),
        ]
        if workers > 1:
            server.argv += ["--workers", str(workers)]
        return server

    @classmethod
    def baseline(cls, data_dir: Path) -> Server:
        server = cls([], data_dir)
        server.argv = [sys.executable, str(BENCH / "baseline.py"), "--port", str(server.port)]
        return server

    @classmethod
    def durable(cls, data_dir: Path, target: list[str], group: bool) -> Server:
        """B0d: the baseline app with one durable write per request (bench/durable.py)."""
        server = cls([], data_dir)
        server.argv = [sys.executable, str(BENCH / "durable.py"), "--port", str(server.port), *target]
        if group:
            server.argv.append("--group")
        return server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120, probe: str = "/health") -> float:
        """Start and wait for the first 200; returns the seconds it took."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "server.log", "ab")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            self.argv, env=server_env(self.env), stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT)
        )
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()[-3000:]}")
            if http_status("127.0.0.1", self.port, probe) == 200:
                self.started_s = time.perf_counter() - t0
                return self.started_s
            time.sleep(0.005)
        raise RuntimeError(f"server did not come up:\n{self.log()[-3000:]}")

    def log(self) -> str:
        path = self.data_dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def rss_kib(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def http_status(host: str, port: int, path: str) -> int:
    """One blocking GET; 0 when the server does not answer yet."""
    try:
        with socket.create_connection((host, port), timeout=1) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            head = s.recv(64)
        return int(head.split(b" ", 2)[1])
    except (OSError, ValueError, IndexError):
        return 0


class Conn:
    """A minimal keep-alive HTTP/1.1 client connection (asyncio streams).

    httpx costs more CPU per request than the server under test; this client only writes a request
    and reads a Content-Length framed answer, so the measuring process stays out of the way.
    """

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> Conn:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
        if body or method in ("POST", "PUT"):
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status = int(raw.split(b" ", 2)[1])
        match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", raw)
        length = int(match.group(1)) if match else 0
        data = await self.reader.readexactly(length) if length else b""
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclass
class WrkResult:
    rps: float
    requests: int
    errors: int
    non2xx: int
    latency_ms: dict[str, float]
    raw: str


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    print("wrk not found: installing it from Debian's packages (apt-get install wrk)", flush=True)
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    subprocess.run([*prefix, "apt-get", "update", "-qq"], check=False)
    subprocess.run([*prefix, "apt-get", "install", "-y", "-qq", "wrk"], check=True)
    path = shutil.which("wrk")
    if not path:
        raise SystemExit("wrk is needed: apt-get install wrk")
    return path


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def run_wrk(
    url: str,
    *,
    script: str,
    args: list[str] | None = None,
    threads: int,
    connections: int,
    seconds: float,
    timeout_s: int = 10,
) -> WrkResult:
    cmd = [
        ensure_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={timeout_s}s",
        "--latency",
        "-s",
        str(LUA / script),
        url,
    ]
    if args:
        cmd += ["--", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx_m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    err_m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    latency: dict[str, float] = {}
    for q in ("50", "99"):
        m = re.search(rf"\s{q}%\s+([\d.]+)(us|ms|s|m)\b", out)
        if m:
            latency[f"p{q}"] = _ms(m.group(1), m.group(2))
    return WrkResult(
        rps=rps,
        requests=requests,
        errors=sum(int(x) for x in err_m.groups()) if err_m else 0,
        non2xx=int(non2xx_m.group(1)) if non2xx_m else 0,
        latency_ms=latency,
        raw=out,
    )

"""Memory and threads of the WhatsApp Web gateway per session, offline.

    .venv/bin/python bench/wa_gateway.py [--steps 0,1,5,10,20,50,100] [--settle 3]

Starts the real gateway (``verdigris wa-gateway``, neonize inside) in an empty network namespace
(``unshare -rn``: nothing can reach WhatsApp), opens sessions over the gateway protocol in steps
and reads the process's resident memory and thread count from /proc after each step settles.

What it measures is a session *that cannot connect*: without a network neonize's connect fails at
once, so the session's connect threads end with it and what stays is the client object, its
whatsmeow store and what the Go runtime kept. A connected session holds two more threads for its
life (ours and neonize's worker, both blocked in the Go call) and, once linked, its keys, caches
and app state: those figures need a live number and are not measured here (docs/whatsapp-web.md).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from verdigris.channels.whatsapp_web import protocol
from verdigris.channels.whatsapp_web.protocol import Event, GatewayLink


def proc_status(pid: int) -> tuple[int, int]:
    """(resident memory in KiB, threads) of process ``pid``."""
    rss = threads = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return rss, threads


async def measure(steps: list[int], settle: float, work: Path) -> list[tuple[int, int, int]]:
    secret_file = work / "wa.secret"
    secret = protocol.load_secret(secret_file)
    gateway = subprocess.Popen(
        ["unshare", "-rn", sys.executable, "-m", "verdigris", "wa-gateway",
         "--socket", str(work / "wa.sock"), "--secret-file", str(secret_file),
         "--store-dir", str(work / "stores"), "--open-spacing-seconds", "0",
         "--max-sessions", str(max(steps) + 1)],
        stdout=subprocess.DEVNULL,
        stderr=(work / "gateway.log").open("w"),
    )  # fmt: skip
    rows: list[tuple[int, int, int]] = []

    async def ignore(event: Event) -> None:
        return None

    link = GatewayLink(work / "wa.sock", lambda: secret, ignore)
    try:
        deadline = time.monotonic() + 30
        while not (work / "wa.sock").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start")
            await asyncio.sleep(0.1)
        link.start()
        await asyncio.wait_for(link.connected.wait(), 30)
        opened = 0
        for target in steps:
            while opened < target:
                opened += 1
                await link.request("open", {"session": str(7700000000 + opened)}, 30)
            await asyncio.sleep(settle)
            rss, threads = proc_status(gateway.pid)
            stats = await link.request("stats", {}, 30)  # the gateway's own view, as /metrics shows it
            assert stats["sessions"] == opened, stats
            rows.append((opened, rss, threads))
    except Exception:
        print((work / "gateway.log").read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        await link.close()
        gateway.terminate()
        gateway.wait(60)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="0,1,5,10,20,50,100")
    parser.add_argument("--settle", type=float, default=3.0)
    args = parser.parse_args()
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rn", "true"]).returncode:
        sys.exit("needs an empty network namespace (unshare -rn), so that nothing reaches WhatsApp")
    with tempfile.TemporaryDirectory(prefix="wa-bench-") as work:
        rows = asyncio.run(measure([int(s) for s in args.steps.split(",")], args.settle, Path(work)))
    base_rss, base_threads = rows[0][1], rows[0][2]
    print("| sessions | RSS MiB | threads | RSS per session MiB | threads per session |")
    print("|---:|---:|---:|---:|---:|")
    for sessions, rss, threads in rows:
        per_rss = (rss - base_rss) / 1024 / sessions if sessions else 0.0
        per_threads = (threads - base_threads) / sessions if sessions else 0.0
        print(f"| {sessions} | {rss / 1024:.1f} | {threads} | {per_rss:.2f} | {per_threads:.1f} |")


if __name__ == "__main__":
    main()

"""Webhook delivery benchmark: deliveries per second and event → delivery latency.

    python bench/webhooks.py [--instances 50] [--per-instance 40] [--latency-samples 300]
    python bench/webhooks.py --workers 4     # 4 server processes on one PostgreSQL database

With ``--workers N`` (or ``--postgres``) the store is a new PostgreSQL database and N server
processes run on it; the load goes to the first, and all of them push webhooks, sharing the
instances by their work leases (docs/scaling.md). The processes start one after another, and a
process that joins gets its share of the partitions only one lease time after another gives them
back, so the benchmark waits until every process holds its share before it measures (otherwise
the drain stalls on the partitions in hand-over; the table shows what each process held).
``--timeline`` prints the receiver's count every 100 ms of the drain.

Starts a real server (``verdigris serve`` in its own process, its own temp data dir) and a local
receiver (uvicorn, in this process). ``--profile FILE`` records the server with py-spy during the
drain.

1. Throughput: every instance gets ``--per-instance`` incoming messages while it is in polling
   mode; then webhookUrl is switched on for all of them at once and the backlog drains to the
   receiver. Deliveries/s = notifications / time until the receiver has them all.
2. Latency: with the webhooks on, a sandbox phone writes to the instances at a steady rate; the
   latency of one notification is the time from the start of the phone's send request (the event)
   to its arrival at the receiver.

Prints a table (Markdown) to paste into docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from harness import Server, create_postgres_database, free_port  # noqa: E402

CUSTOMER = "79990000003"


class Receiver:
    """An ASGI app that answers 200 and notes when each message arrived (by its text)."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.count = 0
        self.changed = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        now = time.perf_counter()
        body = orjson.loads(b"".join(chunks))
        text = ((body.get("messageData") or {}).get("textMessageData") or {}).get("textMessage")
        if text is not None:
            self.arrivals.setdefault(text, now)
            self.count += 1
            self.changed.set()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    async def wait_count(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.count < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"receiver got {self.count} of {n}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), 1.0)
            except TimeoutError:
                pass


def create_instances(data_dir: Path, count: int, database_url: str = "") -> list[dict[str, Any]]:
    """Create linked instances straight in the data dir (faster than one CLI call each)."""
    from verdigris.app import build_core, prepare
    from verdigris.channels.sandbox import network
    from verdigris.config import Settings
    from verdigris.instances import service as instances
    from verdigris.instances.settings import MESSAGE_FLAGS

    async def main() -> list[dict[str, Any]]:
        core = build_core(Settings(data_dir=data_dir, demo=False, database_url=database_url))
        await prepare(core)
        out = []
        try:
            for i in range(count):
                phone = f"7997{i:07d}"
                await network.create_phone(core, phone)
                rec = await instances.create(
                    core, account_id=None, settings=dict.fromkeys(MESSAGE_FLAGS, "yes")
                )
                await instances.link(core, rec, network.wid_of(phone))
                out.append({"idInstance": rec.id, "apiTokenInstance": rec.token, "wid": rec.wid})
        finally:
            await core.db.dispose()
        return out

    return asyncio.run(main())


async def send_all(
    client: httpx.AsyncClient, srv: Server, jobs: list[tuple[dict[str, Any], str]], parallel: int
) -> dict[str, float]:
    """Phone → instance messages, ``parallel`` at a time; returns each text's send start time."""
    started: dict[str, float] = {}
    queue: asyncio.Queue[tuple[dict[str, Any], str]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    headers = {"Authorization": f"Bearer {srv.demo['sandbox']['token']}"}

    async def worker() -> None:
        while not queue.empty():
            inst, text = queue.get_nowait()
            started[text] = time.perf_counter()
            r = await client.post(
                f"{srv.url}/sandbox/phones/{CUSTOMER}/messages",
                json={"chatId": inst["wid"], "message": text},
                headers=headers,
            )
            r.raise_for_status()

    await asyncio.gather(*(worker() for _ in range(parallel)))
    return started


async def set_webhooks(client: httpx.AsyncClient, srv: Server, insts: list[dict[str, Any]], url: str) -> None:
    async def one(inst: dict[str, Any]) -> None:
        r = await client.post(
            f"{srv.url}/waInstance{inst['idInstance']}/setSettings/{inst['apiTokenInstance']}",
            json={"webhookUrl": url},
        )
        r.raise_for_status()

    await asyncio.gather(*(one(i) for i in insts))


def profile_start(srv: Server, path: str) -> subprocess.Popen[bytes] | None:
    """py-spy on the server process while the backlog drains (``--profile``)."""
    if not path or srv.proc is None:
        return None
    spy = Path(sys.executable).parent / "py-spy"
    command = [str(spy), "record", "-p", str(srv.proc.pid), "-r", "200", "-f", "raw", "-o", path]
    return subprocess.Popen([*command, "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def profile_stop(spy: subprocess.Popen[bytes] | None) -> None:
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its profile on Ctrl-C
        spy.wait(timeout=60)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def run(args: argparse.Namespace, servers: list[Server], insts: list[dict[str, Any]]) -> dict[str, Any]:
    srv = servers[0]
    receiver = Receiver()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            receiver, host="127.0.0.1", port=port, log_level="error", lifespan="off", access_log=False
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    url = f"http://127.0.0.1:{port}/hook"
    results: dict[str, Any] = {}
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=32)) as client:
        # 1. Throughput: build a backlog in polling mode, then switch the webhooks on.
        jobs = [(inst, f"bulk {inst['idInstance']} {n}") for n in range(args.per_instance) for inst in insts]
        t = time.perf_counter()
        await send_all(client, srv, jobs, parallel=16)
        results["ingest_s"] = time.perf_counter() - t
        spy = profile_start(srv, args.profile)
        results["held"] = held(servers)
        t = time.perf_counter()
        probe = asyncio.create_task(timeline(receiver, t, args.timeline))
        await set_webhooks(client, srv, insts, url)
        await receiver.wait_count(len(jobs), timeout=600)
        results["drain_s"] = time.perf_counter() - t
        results["pause_s"] = longest_pause(receiver.arrivals.values())
        probe.cancel()
        profile_stop(spy)
        results["deliveries"] = len(jobs)

        # 2. Latency under a steady load.
        receiver.arrivals.clear()
        gap = 1.0 / args.rate
        started: dict[str, float] = {}
        answered: dict[str, float] = {}
        headers = {"Authorization": f"Bearer {srv.demo['sandbox']['token']}"}

        async def one(inst: dict[str, Any], text: str) -> None:
            started[text] = time.perf_counter()
            r = await client.post(
                f"{srv.url}/sandbox/phones/{CUSTOMER}/messages",
                json={"chatId": inst["wid"], "message": text},
                headers=headers,
            )
            answered[text] = time.perf_counter()
            r.raise_for_status()

        tasks = []
        for n in range(args.latency_samples):
            inst = insts[n % len(insts)]
            tasks.append(asyncio.create_task(one(inst, f"lat {n}")))
            await asyncio.sleep(gap)
        await asyncio.gather(*tasks)
        deadline = time.monotonic() + 120
        while (
            len([t for t in started if t in receiver.arrivals]) < len(started) and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.05)
        lat = [(receiver.arrivals[t] - s) * 1000 for t, s in started.items() if t in receiver.arrivals]
        results["latency_ms"] = lat
        # The phone's own send request (the event itself): part of the latency above.
        results["send_ms"] = [(answered[t] - s) * 1000 for t, s in started.items()]
        results["latency_missing"] = len(started) - len(lat)
    server.should_exit = True
    await serving
    return results


async def timeline(receiver: Receiver, t0: float, enabled: bool) -> None:
    """Print the receiver's count every 100 ms of the drain (``--timeline``: shows a stall)."""
    last = -1
    while enabled:
        if receiver.count != last:
            last = receiver.count
            print(f"  {time.perf_counter() - t0:6.1f} s  {last}", file=sys.stderr, flush=True)
        await asyncio.sleep(0.1)


def longest_pause(arrivals: Iterable[float]) -> float:
    """The longest time between two consecutive arrivals (a stall shows here)."""
    return max((b - a for a, b in itertools.pairwise(sorted(arrivals))), default=0.0)


def held(servers: list[Server]) -> list[float]:
    """The webhook partitions each server process holds (its /metrics)."""
    out = []
    for server in servers:
        for line in httpx.get(f"{server.url}/metrics", timeout=30).text.splitlines():
            if line.startswith('verdigris_work_partitions_held{kind="webhook"}'):
                out.append(float(line.rsplit(" ", 1)[1]))
    return out


def settled(servers: list[Server], timeout: float = 120) -> None:
    """Wait until every process holds webhook partitions and all of them are held (a process
    that joins gets its share one lease time after another gives it back; docs/scaling.md)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held_now = held(servers)
        if len(held_now) == len(servers) and min(held_now) > 0 and sum(held_now) == 64:
            return
        time.sleep(0.5)
    raise TimeoutError("the server processes did not share the webhook partitions")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=50)
    parser.add_argument("--per-instance", type=int, default=40)
    parser.add_argument("--latency-samples", type=int, default=300)
    parser.add_argument("--rate", type=float, default=10.0, help="messages per second in the latency phase")
    parser.add_argument("--profile", default="", help="write a py-spy profile of the drain (raw) here")
    parser.add_argument("--concurrency", type=int, default=64, help="VERDIGRIS_WEBHOOK_CONCURRENCY")
    parser.add_argument("--workers", type=int, default=1, help="server processes (PostgreSQL when > 1)")
    parser.add_argument("--postgres", action="store_true", help="a PostgreSQL store (even for one process)")
    parser.add_argument("--timeline", action="store_true", help="print the receiver's count during the drain")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="verdigris-bench-webhooks-"))
    env = {"VERDIGRIS_WEBHOOK_CONCURRENCY": str(args.concurrency)}
    url = ""
    if args.workers > 1 or args.postgres:
        url = env["VERDIGRIS_DATABASE_URL"] = create_postgres_database()
    srv = Server(data_dir, env=env, subprocess=True).start()
    others: list[Server] = []
    try:
        srv.stop()  # create the instances while the server is down (one process writes)
        insts = create_instances(data_dir, args.instances, url)
        srv.start()
        for n in range(args.workers - 1):  # they share the webhook work by leases
            others.append(
                Server(data_dir.with_name(f"{data_dir.name}-{n}"), env=dict(env), subprocess=True).start()
            )
        if url:  # measure the drain, not a hand-over of partitions to a process that just joined
            settled([srv, *others])
        res = asyncio.run(run(args, [srv, *others], insts))
    finally:
        for server in [srv, *others]:
            server.stop()
        srv.drop_database()

    lat = res["latency_ms"]
    held_text = ", ".join(f"{n:g}" for n in res["held"]) or "all (nothing leased)"
    sends = res["send_ms"]
    rows = [
        ("store, server processes", f"{'postgresql' if url else 'sqlite'}, {args.workers}"),
        ("instances", f"{args.instances}"),
        ("notifications drained", f"{res['deliveries']}"),
        ("webhook concurrency", f"{args.concurrency}"),
        ("webhook partitions held per process at the drain's start", held_text),
        ("ingest (phone → instance messages/s)", f"{res['deliveries'] / res['ingest_s']:.0f}"),
        ("**webhook deliveries/s** (backlog drain)", f"**{res['deliveries'] / res['drain_s']:.0f}**"),
        ("longest pause between two deliveries of the drain", f"{res['pause_s'] * 1000:.0f} ms"),
        (
            "latency samples (steady load)",
            f"{len(lat)} at {args.rate:g}/s ({res['latency_missing']} missing)",
        ),
        ("event → delivery latency p50", f"{statistics.median(lat):.1f} ms"),
        ("event → delivery latency p99", f"{pct(lat, 99):.1f} ms"),
        ("event → delivery latency max", f"{max(lat):.1f} ms"),
        (
            "(of which the phone's send request) p50 / p99",
            f"{statistics.median(sends):.1f} / {pct(sends, 99):.1f} ms",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"| {'measure'.ljust(width)} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")


if __name__ == "__main__":
    main()

"""Run every benchmark (B0..B7), print one table, write docs/performance.md and its plots.

    python bench/run.py            # SQLite, then PostgreSQL when it answers
    python bench/run.py --quick    # shorter runs (a smoke test of the benchmark itself)
    python bench/run.py --only B1,B2 --no-pg

See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import seed  # noqa: E402
import uvloop  # noqa: E402
from common import BENCH, ROOT, Conn, Server, ensure_wrk, run_wrk, summary  # noqa: E402

RESULTS = BENCH / "results"
WORK = RESULTS / "work"
PG_URL = os.environ.get(
    "VERDIGRIS_BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/verdigris_bench"
)
SINK = f"{seed.SINK_PHONE}@c.us"
NO_DEMO = {"VERDIGRIS_DEMO": "false"}


@dataclass
class Opts:
    seconds: float
    quick: bool


# --- stores -------------------------------------------------------------------------------------


@dataclass
class Store:
    name: str

    def fresh(self, tag: str) -> tuple[Path, str, dict[str, str]]:
        """A clean data dir (and database) for one benchmark; returns (dir, url, server env)."""
        data_dir = WORK / f"{self.name}-{tag}"
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True)
        if self.name == "sqlite":
            return data_dir, f"sqlite+aiosqlite:///{data_dir / 'verdigris.sqlite3'}", {}
        # One database per benchmark step, so two servers can run side by side (B5, B6).
        url = f"{PG_URL}_{tag.replace('-', '_')}"
        uvloop.run(_pg_recreate(url))
        return data_dir, url, {"VERDIGRIS_DATABASE_URL": url}


async def _pg_recreate(url: str) -> None:
    import asyncpg

    base, dbname = url.replace("postgresql+asyncpg://", "postgresql://").rsplit("/", 1)
    conn = await asyncpg.connect(f"{base}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{dbname}"')
    finally:
        await conn.close()


async def _pg_drop_all(url: str) -> None:
    """Drop every database this runner created (``<name>_<step>``) once PostgreSQL is done."""
    import asyncpg

    base, dbname = url.replace("postgresql+asyncpg://", "postgresql://").rsplit("/", 1)
    conn = await asyncpg.connect(f"{base}/postgres")
    try:
        names = await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE $1", f"{dbname}\\_%")
        for row in names:
            await conn.execute(f'DROP DATABASE IF EXISTS "{row[0]}" WITH (FORCE)')
    finally:
        await conn.close()


def pg_available() -> bool:
    async def check() -> bool:
        import asyncpg

        base = PG_URL.replace("postgresql+asyncpg://", "postgresql://").rsplit("/", 1)[0]
        try:
            conn = await asyncio.wait_for(asyncpg.connect(f"{base}/postgres"), 3)
        except Exception:
            return False
        await conn.close()
        return True

    return uvloop.run(check())


def prepare(store: Store, tag: str, items: list[seed.Inst], **kw: Any) -> tuple[Path, str, dict[str, str]]:
    data_dir, url, env = store.fresh(tag)
    seed.migrate(url)
    uvloop.run(seed.seed(url, items, **kw))
    # Flush what seeding wrote (up to 500 MB for B6), so that the server's first checkpoint does
    # not pay for it: a long-running server would not have that much dirty data waiting.
    if store.name == "postgresql":
        uvloop.run(db_query(url, "CHECKPOINT"))
    os.sync()
    return data_dir, url, {**env, **NO_DEMO}


async def db_query(url: str, sql: str) -> list[Any]:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(text(sql))
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


# --- small helpers ------------------------------------------------------------------------------


async def sequential(port: int, paths: list[tuple[str, str]]) -> list[float]:
    """Issue requests one after another on one connection; latency of each in ms."""
    conn = await Conn(port).open()
    out = []
    for method, path in paths:
        t = time.perf_counter()
        status, _ = await conn.request(method, path)
        out.append((time.perf_counter() - t) * 1000)
        assert status == 200, (status, path)
    await conn.close()
    return out


def wire(inst: seed.Inst, method: str, extra: str = "") -> str:
    return f"/waInstance{inst.id}/{method}/{inst.token}{extra}"


def load_process(port: int, creds: Path, **kw: Any) -> subprocess.Popen[str]:
    argv = [
        sys.executable,
        str(BENCH / "load.py"),
        "--port",
        str(port),
        "--creds",
        str(creds),
        "--chat",
        SINK,
    ]
    for key, value in kw.items():
        argv += [f"--{key}", str(value)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=str(BENCH))


# --- B0 -----------------------------------------------------------------------------------------


def b0(opts: Opts) -> dict[str, Any]:
    with Server.baseline(WORK / "baseline") as server:
        start_s = server.start(probe="/")
        run_wrk(server.url, script="fixed.lua", args=["/"], threads=8, connections=32, seconds=2)
        w = run_wrk(
            server.url, script="fixed.lua", args=["/"], threads=8, connections=32, seconds=opts.seconds
        )
        rtt = uvloop.run(sequential(server.port, [("GET", "/")] * 2000))
        rss = server.rss_kib()
    starts = [start_s]
    for _ in range(2):
        with Server.baseline(WORK / "baseline") as server:
            starts.append(server.start(probe="/"))
    timer = json.loads(
        subprocess.run(
            [sys.executable, str(BENCH / "run.py"), "--timer-floor"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    return {
        "rps": w.rps,
        "wrk_latency_ms": w.latency_ms,
        "rtt_ms": summary(rtt),
        "rss_kib": rss,
        "cold_start_s": sorted(starts)[1],
        "timer_lateness_ms": timer,
    }


def timer_floor() -> None:
    """Lateness of 5,000 plain uvloop timers due over 2 s in an idle process: the floor for B4."""

    async def main() -> dict[str, float]:
        loop = asyncio.get_running_loop()
        rng = random.Random(1)
        lateness: list[float] = []
        done = loop.create_future()
        t0 = time.time()
        count = 5000

        def fire(due: float) -> None:
            lateness.append((time.time() - due) * 1000)
            if len(lateness) == count:
                done.set_result(None)

        for _ in range(count):
            due = t0 + rng.uniform(0.1, 2.0)
            loop.call_later(due - time.time(), fire, due)
        await done
        return summary(lateness)

    print(json.dumps(uvloop.run(main())))


# --- B0d ----------------------------------------------------------------------------------------


def b0d(store: Store, opts: Opts) -> dict[str, Any]:
    """The durable floor: B0's app with one INSERT + COMMIT per request (raw driver), then the same
    with group commit. Same wrk load as B1 (8 threads × 32 connections)."""
    out: dict[str, Any] = {}
    for group in (False, True):
        data_dir, url, _env = store.fresh("b0d-group" if group else "b0d")
        if store.name == "sqlite":
            target = ["--sqlite", str(data_dir / "durable.sqlite3")]
        else:
            target = ["--pg", url.replace("postgresql+asyncpg://", "postgresql://")]
        with Server.durable(data_dir, target, group) as server:
            server.start(probe="/")
            run_wrk(server.url, script="fixed.lua", args=["/"], threads=8, connections=32, seconds=2)
            w = run_wrk(
                server.url, script="fixed.lua", args=["/"], threads=8, connections=32, seconds=opts.seconds
            )
        out["group" if group else "single"] = {"rps": w.rps, "non2xx": w.non2xx, "latency_ms": w.latency_ms}
    return out


# --- B1 -----------------------------------------------------------------------------------------


def b1(store: Store, opts: Opts, linked: bool = True, workers: int = 1) -> dict[str, Any]:
    items = seed.make_instances(1000)
    if not linked:
        for item in items:
            item.state = "notAuthorized"
    tag = ("b1" if linked else "b1a") + (f"w{workers}" if workers > 1 else "")
    data_dir, url, env = prepare(store, tag, items, phones=[seed.SINK_PHONE])
    creds = seed.write_creds(data_dir / "creds.txt", items)
    with Server.verdigris(data_dir, env, workers=workers) as server:
        server.start()
        warm = run_wrk(
            server.url, script="send.lua", args=[str(creds), SINK], threads=8, connections=32, seconds=2
        )
        w = run_wrk(
            server.url,
            script="send.lua",
            args=[str(creds), SINK],
            threads=8,
            connections=32,
            seconds=opts.seconds,
        )
    accepted = warm.requests - warm.non2xx + w.requests - w.non2xx
    rows = uvloop.run(db_query(url, "SELECT count(*) FROM messages WHERE direction = 'out' AND sent_by_api"))
    stored = int(rows[0][0])
    return {
        "rps": w.rps,
        "non2xx": w.non2xx,
        "errors": w.errors,
        "latency_ms": w.latency_ms,
        "accepted": accepted,
        "stored": stored,
        "durable": stored >= accepted,
    }


def b1a(store: Store, opts: Opts) -> dict[str, Any]:
    """B1 without delivery: the instances are not linked, so accepted messages stay queued."""
    return b1(store, opts, linked=False)


def b1w(store: Store, opts: Opts) -> dict[str, Any]:
    """B1 with ``verdigris serve --workers 2`` (PostgreSQL only: SQLite is one process)."""
    return b1(store, opts, workers=2)


def b1w4(store: Store, opts: Opts) -> dict[str, Any]:
    """B1 with ``verdigris serve --workers 4`` (on a 2-core machine: that nothing breaks)."""
    return b1(store, opts, workers=4)


# --- B2 -----------------------------------------------------------------------------------------


def b2(store: Store, opts: Opts) -> dict[str, Any]:
    items = seed.make_instances(32)
    per_queue = 4000
    data_dir, _url, env = prepare(store, "b2", items, notifications={i.id: per_queue for i in items})
    creds = seed.write_creds(data_dir / "creds.txt", items)
    with Server.verdigris(data_dir, env) as server:
        server.start()
        run_wrk(server.url, script="poll.lua", args=[str(creds)], threads=32, connections=32, seconds=2)
        w = run_wrk(
            server.url, script="poll.lua", args=[str(creds)], threads=32, connections=32, seconds=opts.seconds
        )
    pairs = int(w.raw.split("PAIRS ")[1].split()[0])
    empty = int(w.raw.split("EMPTY ")[1].split()[0])
    return {"pairs_per_s": pairs / opts.seconds, "rps": w.rps, "empty": empty, "non2xx": w.non2xx}


# --- B3 -----------------------------------------------------------------------------------------


async def probe_latency(port: int, pairs: list[tuple[seed.Inst, seed.Inst]], seconds: float) -> list[float]:
    """A sends to B; time from A's 200 until B's waiting long-poll returns the message (ms)."""
    samples: list[float] = []
    stop = time.perf_counter() + seconds

    async def one_pair(a: seed.Inst, b: seed.Inst) -> None:
        send_conn = await Conn(port).open()
        poll_conn = await Conn(port).open()
        del_conn = await Conn(port).open()
        rng = random.Random(a.id)
        body = json.dumps({"chatId": b.wid, "message": "ping"}).encode()
        while time.perf_counter() < stop:
            poll = asyncio.ensure_future(
                poll_conn.request("GET", wire(b, "receiveNotification", "?receiveTimeout=5"))
            )
            await asyncio.sleep(0.005)  # let the long-poll reach the server and subscribe
            status, _ = await send_conn.request("POST", wire(a, "sendMessage"), body)
            t_accepted = time.perf_counter()
            assert status == 200
            status, data = await poll
            # Under heavy load the message may take longer than one long-poll: keep waiting (the
            # sample is then the whole wait), so a slow delivery is measured instead of aborting.
            while status == 200 and data == b"null" and time.perf_counter() < t_accepted + 60:
                status, data = await poll_conn.request(
                    "GET", wire(b, "receiveNotification", "?receiveTimeout=5")
                )
            t_received = time.perf_counter()
            assert status == 200 and data != b"null", data
            samples.append((t_received - t_accepted) * 1000)
            receipt = json.loads(data)["receiptId"]
            await del_conn.request("DELETE", wire(b, "deleteNotification", f"/{receipt}"))
            await asyncio.sleep(rng.uniform(0.005, 0.02))
        for c in (send_conn, poll_conn, del_conn):
            await c.close()

    await asyncio.gather(*(one_pair(a, b) for a, b in pairs))
    return samples


def b3(store: Store, opts: Opts) -> dict[str, Any]:
    load_items = seed.make_instances(1000)
    senders = seed.make_instances(3, start=5000)
    receivers = seed.make_instances(3, start=6000, flags=("incomingWebhook",))
    phones = [seed.SINK_PHONE] + [i.phone for i in senders + receivers]
    data_dir, _url, env = prepare(store, "b3", load_items + senders + receivers, phones=phones)
    creds = seed.write_creds(data_dir / "creds.txt", load_items)
    pairs = list(zip(senders, receivers, strict=True))
    out: dict[str, Any] = {"samples": {}}
    with Server.verdigris(data_dir, env) as server:
        server.start()
        idle = uvloop.run(probe_latency(server.port, pairs, 3))
        out["idle_ms"] = summary(idle)
        out["samples"]["idle"] = idle
        # The target load (1,000 msg/s) and a light one (25 msg/s) the server keeps up with.
        for rate in (25, 1000):
            duration = opts.seconds + 3
            load = load_process(server.port, creds, rate=rate, seconds=duration, connections=32)
            time.sleep(2)
            busy = uvloop.run(probe_latency(server.port, pairs, opts.seconds))
            text, _ = load.communicate(timeout=120)
            achieved = json.loads(text)
            if rate == 1000:
                out.update({"load_ms": summary(busy), "load": achieved, "rate": rate})
                out["samples"]["load 1000/s"] = busy
            else:
                out.update({"light_ms": summary(busy), "light": achieved, "light_rate": rate})
                out["samples"][f"load {rate}/s"] = busy
            # Let the server drain what the load queued before the next phase.
            time.sleep(3)
    return out


# --- B4 -----------------------------------------------------------------------------------------


def b4(store: Store, opts: Opts) -> dict[str, Any]:
    # 10,000 linked instances; `messages` of them (a random choice) get one message each with a
    # random typingTime of 1-20 s, accepted at `rate` per second. The pace keeps the due messages
    # within what one server delivers per second on a small machine, so lateness measures the
    # scheduler and not a delivery backlog.
    count = 10_000
    messages, rate = (500, 50) if opts.quick else (1000, 50)
    items = seed.make_instances(count)
    data_dir, url, env = prepare(store, "b4", items, phones=[seed.SINK_PHONE])
    chosen = random.Random(4).sample(items, messages)
    creds = seed.write_creds(data_dir / "creds.txt", chosen)
    with Server.verdigris(data_dir, env) as server:
        server.start()
        load = load_process(
            server.port,
            creds,
            rate=rate,
            count=messages,
            connections=8,
            typing="1000,20000",
            **{"max-seconds": 60},
        )
        out, _ = load.communicate(timeout=300)
        sent = json.loads(out)
        deadline = time.time() + 30
        while time.time() < deadline:
            rows = uvloop.run(db_query(url, "SELECT count(*) FROM messages WHERE status = 'queued'"))
            if int(rows[0][0]) == 0:
                break
            time.sleep(1)
    rows = uvloop.run(
        db_query(
            url, "SELECT created_ms, sent_ms, request FROM messages WHERE direction = 'out' AND sent_by_api"
        )
    )
    lateness = [float(r[1] - r[0] - json.loads(r[2])["_typing_ms"]) for r in rows if r[1] is not None]
    # Messages still queued when the wait ended count as late by at least the time waited.
    unsent = len(rows) - len(lateness)
    return {
        "instances": count,
        "messages": messages,
        "rate": rate,
        "accepted": sent,
        "sent": len(lateness),
        "unsent": unsent,
        "lateness_ms": summary(lateness),
        "samples": lateness,
    }


# --- B5 -----------------------------------------------------------------------------------------


def b5(store: Store, opts: Opts) -> dict[str, Any]:
    levels = [100, 1000, 10_000, 100_000]
    rss: dict[int, int] = {}
    warm: dict[str, float] = {}
    kept: dict[int, tuple[Path, dict[str, str], list[seed.Inst]]] = {}
    for n in levels:
        items = seed.make_instances(n)
        data_dir, _url, env = prepare(store, f"b5-{n}", items)
        kept[n] = (data_dir, env, items)
        with Server.verdigris(data_dir, env) as server:
            server.start()
            time.sleep(1.0)
            rss[n] = server.rss_kib()
            if n == 10_000:
                # Touch every instance once: the cache now holds them all.
                async def touch_all(port: int, everyone: list[seed.Inst]) -> None:
                    async def part(chunk: list[seed.Inst]) -> None:
                        await sequential(port, [("GET", wire(i, "getStateInstance")) for i in chunk])

                    await asyncio.gather(*(part(everyone[k::8]) for k in range(8)))

                uvloop.run(touch_all(server.port, items))
                time.sleep(0.5)
                warm = {"instances": n, "rss_before_kib": rss[n], "rss_after_kib": server.rss_kib()}
                warm["per_instance_bytes"] = (warm["rss_after_kib"] - rss[n]) * 1024 / n
    # Latency at 100 vs 100,000 instances: both servers run side by side and are asked in
    # alternating batches, so a change in the machine's load hits both equally.
    latency: dict[int, dict[str, float]] = {}
    with Server.verdigris(*kept[100][:2]) as small, Server.verdigris(*kept[100_000][:2]) as big:
        small.start()
        big.start()
        paths = {}
        for n in (100, 100_000):
            rng = random.Random(n)
            paths[n] = [("GET", wire(rng.choice(kept[n][2]), "getStateInstance")) for _ in range(3000)]
        # First pass: most of the 100k server's instances are read from the store (cache misses);
        # second pass: the same requests again, now served from the instance cache.
        for key in (1, -1):
            got: dict[int, list[float]] = {100: [], 100_000: []}
            for k in range(0, 3000, 100):
                for n, server in ((100_000, big), (100, small)):
                    got[n] += uvloop.run(sequential(server.port, paths[n][k : k + 100]))
            for n in got:
                latency[key * n] = summary(got[n])
    per_idle = (rss[100_000] - rss[1000]) * 1024 / 99_000
    return {
        "rss_kib": rss,
        "per_idle_instance_bytes": per_idle,
        "warm": warm,
        "latency_ms": latency,
        "latency_ratio": latency[100_000]["p50"] / latency[100]["p50"],
        "warm_latency_ratio": latency[-100_000]["p50"] / latency[-100]["p50"],
    }


# --- B6 -----------------------------------------------------------------------------------------


async def receive_delete_pairs(n: int, inst: seed.Inst, port: int) -> tuple[list[float], list[float]]:
    """``n`` receive + delete pairs one at a time; the latency of each call (ms)."""
    conn = await Conn(port).open()
    receive, delete = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        status, data = await conn.request("GET", wire(inst, "receiveNotification", "?receiveTimeout=5"))
        t1 = time.perf_counter()
        receipt = json.loads(data)["receiptId"]
        status, data = await conn.request("DELETE", wire(inst, "deleteNotification", f"/{receipt}"))
        t2 = time.perf_counter()
        assert data == b'{"result":true}', data
        receive.append((t1 - t0) * 1000)
        delete.append((t2 - t1) * 1000)
    await conn.close()
    return receive, delete


def b6(store: Store, opts: Opts) -> dict[str, Any]:
    out: dict[str, Any] = {}
    deep = 100_000 if opts.quick else 1_000_000
    depths = (1000, deep)
    setups = {}
    for depth in depths:
        inst = seed.make_instances(1)[0]
        t = time.perf_counter()
        data_dir, _url, env = prepare(store, f"b6-{depth}", [inst], notifications={inst.id: depth})
        setups[depth] = (data_dir, env, inst)
        out[str(depth)] = {"seed_s": time.perf_counter() - t}
    # Both servers run side by side and are asked in alternating batches of 25 pairs.
    with Server.verdigris(*setups[1000][:2]) as shallow, Server.verdigris(*setups[deep][:2]) as deep_server:
        servers = {1000: shallow, deep: deep_server}
        for server in servers.values():
            server.start()
        got: dict[int, tuple[list[float], list[float]]] = {d: ([], []) for d in depths}
        for round_no in range(19):
            for depth in depths:
                receive, delete = uvloop.run(receive_delete_pairs(25, setups[depth][2], servers[depth].port))
                if round_no:  # the first round warms up
                    got[depth][0].extend(receive)
                    got[depth][1].extend(delete)
    for depth in depths:
        out[str(depth)].update({"receive_ms": summary(got[depth][0]), "delete_ms": summary(got[depth][1])})
    out["deep"] = deep
    pair = {k: out[k]["receive_ms"]["p50"] + out[k]["delete_ms"]["p50"] for k in ("1000", str(deep))}
    out["ratio"] = pair[str(deep)] / pair["1000"]
    return out


# --- B7 -----------------------------------------------------------------------------------------


def b7(store: Store, opts: Opts) -> dict[str, Any]:
    times = []
    for k in range(3):
        data_dir, _url, env = store.fresh(f"b7-{k}")
        with Server.verdigris(data_dir, env) as server:
            times.append(server.start())
    return {"runs_s": times, "median_s": sorted(times)[1]}


# --- the table ----------------------------------------------------------------------------------


@dataclass
class Row:
    id: str
    store: str
    what: str
    value: str
    baseline: str
    ratio: str
    target: str
    met: bool | None


def worker_rows(store: str, r: dict[str, Any], b0_rps: float) -> list[Row]:
    """B1 with several server processes (``serve --workers``), beside B1 with one."""
    out: list[Row] = []
    for key, workers in (("B1w", 2), ("B1w4", 4)):
        if key not in r or "B1" not in r:
            continue
        x = r[key]
        durable = "" if x["durable"] else " (NOT all 200s stored!)"
        # Two workers should come near twice one; four on this 2-core machine only must not break.
        wanted = 1.6 * r["B1"]["rps"] if workers == 2 else 0.0
        out.append(
            Row(
                key,
                store,
                f"B1 with `serve --workers {workers}`",
                f"{x['rps']:.0f} req/s{durable}; {x['rps'] / r['B1']['rps']:.2f}× B1",
                f"{b0_rps:.0f} req/s",
                f"{x['rps'] / b0_rps:.2f}×",
                "≥ 1.6 × B1" if wanted else "(information: 2 cores)",
                x["rps"] >= wanted and x["durable"],
            )
        )
    return out


def rows_for(store: str, r: dict[str, Any], base: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    b0_rps = base["rps"]
    rtt = base["rtt_ms"]
    if "B0d" in r:
        for key, what in (
            ("single", "durable floor: B0 app + raw INSERT + COMMIT per request"),
            ("group", "durable floor with group commit (one transaction per loop turn)"),
        ):
            x = r["B0d"][key]
            ratio = x["rps"] / b0_rps
            out.append(
                Row(
                    "B0d",
                    store,
                    what,
                    f"{x['rps']:.0f} req/s",
                    f"{b0_rps:.0f} req/s",
                    f"{ratio:.2f}×",
                    "(baseline)",
                    None,
                )
            )
    if "B1" in r:
        x = r["B1"]
        ratio = x["rps"] / b0_rps
        durable = "" if x["durable"] else " (NOT all 200s stored!)"
        out.append(
            Row(
                "B1",
                store,
                "sendMessage accepted, committed (1,000 instances)",
                f"{x['rps']:.0f} req/s{durable}",
                f"{b0_rps:.0f} req/s",
                f"{ratio:.2f}×",
                "≥ 0.10 × B0 (goal 0.25)",
                ratio >= 0.10 and x["durable"],
            )
        )
    out += worker_rows(store, r, b0_rps)
    if "B1a" in r:
        x = r["B1a"]
        ratio = x["rps"] / b0_rps
        out.append(
            Row(
                "B1a",
                store,
                "sendMessage accepted, no delivery running (not linked)",
                f"{x['rps']:.0f} req/s",
                f"{b0_rps:.0f} req/s",
                f"{ratio:.2f}×",
                "≥ 0.25 × B0 (goal 0.5)",
                ratio >= 0.25,
            )
        )
    if "B2" in r:
        x = r["B2"]
        ratio = x["pairs_per_s"] / b0_rps
        out.append(
            Row(
                "B2",
                store,
                "receive + delete pairs (32 full queues)",
                f"{x['pairs_per_s']:.0f} pairs/s",
                f"{b0_rps:.0f} req/s",
                f"{ratio:.2f}×",
                "≥ 0.10 × B0 (goal 0.25)",
                ratio >= 0.10,
            )
        )
    if "B3" in r:
        x = r["B3"]
        lat = x["idle_ms"]
        out.append(
            Row(
                "B3",
                store,
                "A→B latency, no other load",
                f"p50 {lat['p50']:.1f} / p99 {lat['p99']:.1f} / max {lat['max']:.1f} ms",
                f"rtt p99 {rtt['p99']:.2f} ms",
                f"{lat['p99'] / rtt['p99']:.0f}×",
                "(information)",
                None,
            )
        )
        lat = x["light_ms"]
        out.append(
            Row(
                "B3",
                store,
                f"A→B latency at {x['light']['rate']:.0f} msg/s (asked {x['light_rate']:.0f})",
                f"p50 {lat['p50']:.1f} / p99 {lat['p99']:.1f} / max {lat['max']:.1f} ms",
                f"rtt p99 {rtt['p99']:.2f} ms",
                f"{lat['p99'] / rtt['p99']:.0f}×",
                "(information)",
                None,
            )
        )
        lat = x["load_ms"]
        out.append(
            Row(
                "B3",
                store,
                f"A→B latency at {x['load']['rate']:.0f} msg/s (asked {x['rate']:.0f})",
                f"p50 {lat['p50']:.1f} / p99 {lat['p99']:.1f} / max {lat['max']:.1f} ms",
                f"rtt p99 {rtt['p99']:.2f} ms",
                f"{lat['p99'] / rtt['p99']:.0f}×",
                "p99 ≤ 20 ms at 1,000 msg/s",
                lat["p99"] <= 20 and x["load"]["rate"] >= 0.95 * x["rate"],
            )
        )
    if "B4" in r:
        x = r["B4"]
        lat = x["lateness_ms"]
        floor = base["timer_lateness_ms"]
        unsent = f", {x['unsent']} not sent in time" if x.get("unsent") else ""
        out.append(
            Row(
                "B4",
                store,
                f"send time − due time ({x['instances']:,} instances, {x['sent']:,} due over ~40 s{unsent})",
                f"p50 {lat['p50']:.1f} / p99 {lat['p99']:.1f} ms",
                f"bare timers p99 {floor['p99']:.2f} ms",
                f"{lat['p99'] / max(floor['p99'], 0.01):.0f}×",
                "p99 ≤ 10 ms",
                lat["p99"] <= 10 and not x.get("unsent"),
            )
        )
    if "B5" in r:
        x = r["B5"]
        per = x["per_idle_instance_bytes"]
        out.append(
            Row(
                "B5",
                store,
                "RSS per idle instance (1k → 100k)",
                f"{per:.0f} B ({x['rss_kib'][100_000] / 1024:.0f} MiB at 100k)",
                f"B0 app {base['rss_kib'] / 1024:.0f} MiB",
                "—",
                "≤ 2 KiB",
                per <= 2048,
            )
        )
        warm = x["warm"]
        if warm:
            out.append(
                Row(
                    "B5",
                    store,
                    "RSS per instance once cached (10k touched)",
                    f"{warm['per_instance_bytes']:.0f} B",
                    "—",
                    "—",
                    "(information)",
                    None,
                )
            )
        lat = x["latency_ms"]
        out.append(
            Row(
                "B5",
                store,
                "getStateInstance p50, 100k vs 100 instances, first touch",
                f"{lat[100_000]['p50']:.2f} vs {lat[100]['p50']:.2f} ms",
                f"rtt p50 {rtt['p50']:.2f} ms",
                f"{x['latency_ratio']:.2f}×",
                "≤ 1.5× (goal 1.2)",
                x["latency_ratio"] <= 1.5,
            )
        )
        out.append(
            Row(
                "B5",
                store,
                "getStateInstance p50, 100k vs 100 instances, cached",
                f"{lat[-100_000]['p50']:.2f} vs {lat[-100]['p50']:.2f} ms",
                f"rtt p50 {rtt['p50']:.2f} ms",
                f"{x['warm_latency_ratio']:.2f}×",
                "≤ 1.2×",
                x["warm_latency_ratio"] <= 1.2,
            )
        )
    if "B6" in r:
        x = r["B6"]
        deep = str(x["deep"])
        d, s = x[deep], x["1000"]
        out.append(
            Row(
                "B6",
                store,
                f"receive+delete p50 at {int(deep):,} vs 1,000 queued",
                f"{d['receive_ms']['p50'] + d['delete_ms']['p50']:.2f} vs "
                f"{s['receive_ms']['p50'] + s['delete_ms']['p50']:.2f} ms",
                f"rtt p50 {rtt['p50']:.2f} ms",
                f"{x['ratio']:.2f}×",
                "≤ 1.2×",
                x["ratio"] <= 1.2,
            )
        )
    if "B7" in r:
        x = r["B7"]
        out.append(
            Row(
                "B7",
                store,
                "cold start to first 200 (empty data dir)",
                f"{x['median_s']:.2f} s",
                f"B0 app {base['cold_start_s']:.2f} s",
                f"{x['median_s'] / base['cold_start_s']:.1f}×",
                "≤ 2 s",
                x["median_s"] <= 2,
            )
        )
    return out


def render_table(base: dict[str, Any], rows: list[Row]) -> str:
    lines = [
        "| id | store | what | measured | baseline (same run) | ratio | target | met |",
        "|---|---|---|---|---|---|---|---|",
        f"| B0 | — | minimal ASGI app, same uvicorn stack | {base['rps']:.0f} req/s; rtt p50 "
        f"{base['rtt_ms']['p50']:.2f} / p99 {base['rtt_ms']['p99']:.2f} ms | — | 1.00× | — | — |",
    ]
    for row in rows:
        met = "—" if row.met is None else ("**met**" if row.met else "**missed**")
        lines.append(
            f"| {row.id} | {row.store} | {row.what} | {row.value} | {row.baseline} | {row.ratio} | {row.target} | {met} |"
        )
    return "\n".join(lines)


# --- main ---------------------------------------------------------------------------------------

BENCHES: dict[str, Callable[[Store, Opts], dict[str, Any]]] = {
    "B0d": b0d,
    "B1": b1,
    "B1w": b1w,
    "B1w4": b1w4,
    "B1a": b1a,
    "B2": b2,
    "B3": b3,
    "B4": b4,
    "B5": b5,
    "B6": b6,
    "B7": b7,
}


PG_ONLY = {"B1w", "B1w4"}  # several processes share a PostgreSQL store


def machine() -> dict[str, Any]:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    load = os.getloadavg()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_before": [round(x, 2) for x in load],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short runs, smaller B4/B6")
    parser.add_argument("--seconds", type=float, default=None, help="duration of each throughput run")
    parser.add_argument("--only", default="", help="comma-separated ids (B1..B7); B0 always runs")
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    parser.add_argument(
        "--pg-only", default="B0d,B1,B1w,B1a,B2,B3,B4,B5,B6,B7", help="ids to repeat on PostgreSQL"
    )
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/performance.md")
    parser.add_argument("--out", default=str(RESULTS / "latest.json"), help="where the raw results go")
    parser.add_argument("--timer-floor", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.timer_floor:
        timer_floor()
        return
    opts = Opts(seconds=args.seconds or (4 if args.quick else 8), quick=args.quick)
    wanted = [b for b in BENCHES if not args.only or b in args.only.split(",")]
    ensure_wrk()
    RESULTS.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    results: dict[str, Any] = {"machine": machine(), "opts": vars(args), "stores": {}}
    print("B0 baseline ...", flush=True)
    results["B0"] = b0(opts)
    stores = [Store("sqlite")]
    if not args.no_pg:
        if pg_available():
            stores.append(Store("postgresql"))
        else:
            print(f"PostgreSQL not reachable at {PG_URL}: skipped", flush=True)
    for store in stores:
        got: dict[str, Any] = {}
        ids = (
            [b for b in wanted if b not in PG_ONLY]
            if store.name == "sqlite"
            else [b for b in wanted if b in args.pg_only.split(",")]
        )
        for bid in ids:
            print(f"{bid} on {store.name} ...", flush=True)
            t = time.perf_counter()
            try:
                got[bid] = BENCHES[bid](store, opts)
            except Exception as exc:  # a broken benchmark is reported, the others still run
                got[bid] = {"error": f"{type(exc).__name__}: {exc}"}
                print(f"  {bid} failed: {exc}", flush=True)
            print(f"  done in {time.perf_counter() - t:.0f} s", flush=True)
        results["stores"][store.name] = got
        if store.name == "postgresql":
            uvloop.run(_pg_drop_all(PG_URL))
    results["elapsed_s"] = time.perf_counter() - t_start
    rows: list[Row] = []
    errors = []
    for name, got in results["stores"].items():
        ok = {k: v for k, v in got.items() if "error" not in v}
        errors += [f"{k} on {name}: {v['error']}" for k, v in got.items() if "error" in v]
        rows += rows_for(name, ok, results["B0"])
    table = render_table(results["B0"], rows)
    results["rows"] = [asdict(row) for row in rows]
    Path(args.out).write_text(json.dumps(results, indent=1, default=str))
    print()
    print(table)
    for e in errors:
        print("ERROR", e)
    print(f"\n(total {results['elapsed_s']:.0f} s; raw results in {args.out})")
    if not args.no_docs:
        from report import write_docs

        write_docs(results, table, errors)
        print(f"wrote {ROOT / 'docs' / 'performance.md'} and plots")


if __name__ == "__main__":
    main()

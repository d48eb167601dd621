"""A paced sendMessage load, in its own process: ``rate`` messages per second over many instances.

wrk has no wall clock in its Lua scripts, so a fixed *rate* (B3's "at 1,000 msg/s", B4's burst of
one message per instance) comes from this asyncio client instead. It prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

import uvloop
from common import Conn


async def main(args: argparse.Namespace) -> dict[str, object]:
    creds = [line.split() for line in open(args.creds) if line.strip()]
    rng = random.Random(args.seed)
    total = args.count or int(args.rate * args.seconds)
    next_index = 0
    ok = errors = 0
    late_starts = 0
    t0 = time.perf_counter()
    # Never run much past the planned time, even when the server falls behind the asked rate.
    stop_at = t0 + (args.max_seconds or (total / args.rate) * 1.2 + 5)

    async def worker() -> None:
        nonlocal next_index, ok, errors, late_starts
        conn = await Conn(args.port).open()
        while next_index < total and time.perf_counter() < stop_at:
            k = next_index
            next_index += 1
            due = t0 + k / args.rate
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -0.05:
                late_starts += 1
            iid, token = creds[k % len(creds)]
            body: dict[str, object] = {"chatId": args.chat, "message": f"load {k}"}
            if args.typing:
                low, high = (int(x) for x in args.typing.split(","))
                body["typingTime"] = rng.randint(low, high)
            status, _ = await conn.request(
                "POST", f"/waInstance{iid}/sendMessage/{token}", json.dumps(body).encode()
            )
            if status == 200:
                ok += 1
            else:
                errors += 1
        await conn.close()

    await asyncio.gather(*(worker() for _ in range(args.connections)))
    elapsed = time.perf_counter() - t0
    return {
        "sent": ok + errors,
        "ok": ok,
        "errors": errors,
        "elapsed": elapsed,
        "rate": ok / elapsed,
        "late_starts": late_starts,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--creds", required=True)
    parser.add_argument("--chat", required=True)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--typing", default="", help="low,high typingTime range in ms")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-seconds", type=float, default=0)
    print(json.dumps(uvloop.run(main(parser.parse_args()))), flush=True)

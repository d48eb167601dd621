"""Measure this checkout against an earlier commit in one run, and print both side by side.

    python bench/compare.py 6b295e4 --only B1,B2,B3 --no-pg     # any run.py options after the ref
    python bench/compare.py 6b295e4 --rounds 3 --only B1 --no-pg  # before, after, before, ... 3 times each

The commit's ``src/`` is extracted with ``git archive`` into ``bench/results/work/`` and the
benchmarks of ``bench/run.py`` (this checkout's, so both sides are measured the same way) run
first against it, then against this checkout, each with its own B0 baseline: the machine's speed
drifts, so compare the "ratio" columns (each side's figure against its own B0) as well as the raw
figures, and on a shared machine alternate several rounds (``--rounds N``: every cell then lists
the N figures in the order they were measured). Neither run rewrites docs/performance.md.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / "results" / "work"


def extract(ref: str) -> tuple[str, Path]:
    sha = subprocess.run(
        ["git", "rev-parse", "--short", ref], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    target = WORK / f"src-{sha}"
    if not (target / "src" / "verdigris").is_dir():
        archive = subprocess.run(["git", "archive", sha, "src"], cwd=ROOT, check=True, capture_output=True)
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(target, filter="data")
    return sha, target / "src"


def run(label: str, src: Path | None, options: list[str]) -> dict[str, Any]:
    out = WORK / f"compare-{label.replace(' ', '-')}.json"
    env = dict(os.environ)
    if src is not None:
        env["VERDIGRIS_BENCH_SRC"] = str(src)
    print(f"=== {label} ===", flush=True)
    subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--no-docs", "--out", str(out), *options], env=env, check=True
    )
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def side_by_side(before_label: str, befores: list[dict[str, Any]], afters: list[dict[str, Any]]) -> str:
    def b0(runs: list[dict[str, Any]]) -> str:
        return " / ".join(f"{r['B0']['rps']:.0f}" for r in runs) + " req/s"

    def cells(runs: list[dict[str, Any]], key: tuple[str, str, str]) -> tuple[str, str]:
        found = [
            next((row for row in r["rows"] if (row["id"], row["store"], row["what"]) == key), None)
            for r in runs
        ]
        if not any(found):
            return "(not measured)", "—"
        return (
            " / ".join(f["value"] if f else "—" for f in found),
            " / ".join(f["ratio"] if f else "—" for f in found),
        )

    lines = [
        f"| id | store | what | {before_label} | ratio | this checkout | ratio |",
        "|---|---|---|---|---|---|---|",
        f"| B0 | — | minimal ASGI app (each side's own baseline) | {b0(befores)} | 1.00× | {b0(afters)} | 1.00× |",
    ]
    keys: list[tuple[str, str, str]] = []
    for r in afters + befores:
        for row in r["rows"]:
            key = (row["id"], row["store"], row["what"])
            if key not in keys:
                keys.append(key)
    for key in keys:
        was, was_ratio = cells(befores, key)
        now, now_ratio = cells(afters, key)
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {was} | {was_ratio} | {now} | {now_ratio} |")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.exit(__doc__)
    sha, src = extract(sys.argv[1])
    options = sys.argv[2:]
    rounds = 1
    if "--rounds" in options:
        at = options.index("--rounds")
        rounds = int(options[at + 1])
        del options[at : at + 2]
    befores, afters = [], []
    for n in range(rounds):
        befores.append(run(f"{sha} {n + 1}", src, options))
        afters.append(run(f"head {n + 1}", None, options))
    print()
    print(side_by_side(sha, befores, afters))


if __name__ == "__main__":
    main()

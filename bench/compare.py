"""Measure this checkout against an earlier commit in one run, and print both side by side.

    python bench/compare.py 6b295e4 --only B1,B2,B3 --no-pg     # any run.py options after the ref

The commit's ``src/`` is extracted with ``git archive`` into ``bench/results/work/`` and the
benchmarks of ``bench/run.py`` (this checkout's, so both sides are measured the same way) run
first against it, then against this checkout, each with its own B0 baseline: the machine's speed
drifts, so compare the "ratio" columns (each side's figure against its own B0) as well as the raw
figures. Neither run rewrites docs/performance.md.
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
    out = WORK / f"compare-{label}.json"
    env = dict(os.environ)
    if src is not None:
        env["VERDIGRIS_BENCH_SRC"] = str(src)
    print(f"=== {label} ===", flush=True)
    subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--no-docs", "--out", str(out), *options], env=env, check=True
    )
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def side_by_side(before_label: str, before: dict[str, Any], after: dict[str, Any]) -> str:
    def b0(r: dict[str, Any]) -> str:
        return f"{r['B0']['rps']:.0f} req/s, rtt p50 {r['B0']['rtt_ms']['p50']:.2f} ms"

    lines = [
        f"| id | store | what | {before_label} | ratio | this checkout | ratio |",
        "|---|---|---|---|---|---|---|",
        f"| B0 | — | minimal ASGI app (each side's own baseline) | {b0(before)} | 1.00× | {b0(after)} | 1.00× |",
    ]
    old = {(r["id"], r["store"], r["what"]): r for r in before["rows"]}
    for row in after["rows"]:
        was = old.pop((row["id"], row["store"], row["what"]), None)
        was_value, was_ratio = (was["value"], was["ratio"]) if was else ("(not measured)", "—")
        lines.append(
            f"| {row['id']} | {row['store']} | {row['what']} | {was_value} | {was_ratio} "
            f"| {row['value']} | {row['ratio']} |"
        )
    for (bid, store, what), was in old.items():
        lines.append(f"| {bid} | {store} | {what} | {was['value']} | {was['ratio']} | (not measured) | — |")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.exit(__doc__)
    sha, src = extract(sys.argv[1])
    options = sys.argv[2:]
    before = run(sha, src, options)
    after = run("head", None, options)
    print()
    print(side_by_side(sha, before, after))


if __name__ == "__main__":
    main()

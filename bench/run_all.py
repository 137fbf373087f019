"""``make bench``: every benchmark in turn, then one table of their figures and ratios.

Run it from the repository root (about 25 minutes on 2 idle CPU cores)::

    python bench/run_all.py                    # all of them
    python bench/run_all.py store training     # some, by name
    python bench/run_all.py --table            # only the table, from the last lines written

Each script runs in its own process (one at a time: they share the cores) and
prints its own figures; this prints, last, the table the README's "Performance"
section copies: one row per figure from the JSON line each script appended to
``bench/results/`` in this run, with its ratio against the baseline measured in
the same run, the target, and each script's wall time. A script that fails is
reported and the rest still run; the exit status is then 1.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _results import FOLDER, last_record, now

HERE = Path(__file__).parent
RESULTS = FOLDER

Row = tuple[str, str, str]  # figure, measured, target


def _sandbox(r: dict[str, Any]) -> list[Row]:
    figure = f"verification: pool / fresh process ({r['isolation']})"
    return [(figure, f"{r['ratio']:.1f}x ({r['pool_per_s']:.0f}/s)", ">= 10x, >= 100/s")]


def _store(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for size, ratio in r["ratios"].items():
        n = f"{int(size):,}"
        rows.append((f"store add time ours/raw at {n}", f"{ratio['add']:.2f}x", "<= 1.2x"))
        rows.append(
            (
                f"store query p50 ours/raw at {n} (plain, filtered)",
                f"{ratio['query_plain_p50']:.2f}x, {ratio['query_filtered_p50']:.2f}x",
                "<= 1.2x",
            )
        )
    large = r.get("large")
    if large:
        q = large["query_ms"]
        rows.append(
            (
                f"store query p50 at {large['reached']:,} (plain, filtered)",
                f"{q['ours plain']['p50']:.1f} ms, {q['ours filtered']['p50']:.1f} ms",
                "< 20 ms at 1M",
            )
        )
    return rows


def _scaling(r: dict[str, Any]) -> list[Row]:
    sizes = sorted(int(s) for s in r["seconds"])
    figure = f"round store work, {sizes[0]:,} -> {sizes[-1]:,} stored (retrieval off, on)"
    ratio = r["ratio"]
    return [(figure, f"{ratio['round, retrieve_k=0']:.2f}x, {ratio['round']:.2f}x", "<= 1.5x")]


def _generation(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for mode in ("greedy", "sampling"):
        if mode in r:
            m = r[mode]
            rows.append(
                (
                    f"generation {mode}: ours / raw generate",
                    f"{m['ratio']:.2f}x ({m['ours_tokens_per_s']:.0f} tokens/s)",
                    ">= 0.8x",
                )
            )
    return rows


def _training(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for method in ("sft", "dpo"):
        if method in r:
            m = r[method]
            rows.append(
                (
                    f"training {method.upper()} step time: ours / raw TRL",
                    f"{m['ratio']:.2f}x ({m['ours_s_per_step']:.2f} s/step)",
                    "<= 1.05x",
                )
            )
    batching = r.get("batching")
    if batching:
        padded = batching["none"]["tokens_per_s"]
        ratios = ", ".join(
            f"{mode} {batching[mode]['tokens_per_s'] / padded:.2f}x"
            for mode in batching
            if mode != "none"
        )
        rows.append(("training SFT tokens/s vs padded batches", ratios, "-"))
    return rows


def _overhead(r: dict[str, Any]) -> list[Row]:
    figure = f"loop overhead, one round of {r['tasks_per_round']} tasks"
    return [(figure, f"{r['overhead_share']:.1%} of {r['round_s']:.0f} s", "< 5%")]


# name: (script, results file, its rows), in the order they run
BENCHES: dict[str, tuple[str, str, Callable[[dict[str, Any]], list[Row]]]] = {
    "sandbox": ("bench_sandbox.py", "sandbox.jsonl", _sandbox),
    "store": ("bench_store.py", "store.jsonl", _store),
    "scaling": ("bench_scaling.py", "scaling.jsonl", _scaling),
    "generation": ("bench_generation.py", "generation.jsonl", _generation),
    "training": ("bench_training.py", "training.jsonl", _training),
    "overhead": ("bench_overhead.py", "overhead.jsonl", _overhead),
}


def main(args: list[str]) -> int:
    table_only = "--table" in args
    names = [a for a in args if a != "--table"]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {list(BENCHES)}", file=sys.stderr)
        return 2
    chosen = names or list(BENCHES)
    started = time.perf_counter()
    table: list[Row] = []
    walls: dict[str, float] = {}
    failed: list[str] = []
    for name in chosen:
        script, results, rows = BENCHES[name]
        if table_only:
            code, since = 0, ""
        else:
            print(f"\n=== {name} ({script}) ===", flush=True)
            since = now()
            start = time.perf_counter()
            code = subprocess.call([sys.executable, str(HERE / script)])
            walls[name] = time.perf_counter() - start
        record = last_record(RESULTS / results, since) if code == 0 else None
        if record is None:
            failed.append(name)
            why = f"exit {code}" if code else "no result line written"
            table.append((f"{name}: FAILED ({why})", "-", "-"))
        else:
            table.extend(rows(record))
    total = time.perf_counter() - started
    width = max((len(figure) for figure, _, _ in table), default=0)
    if walls:
        print(f"\n=== summary: {total / 60:.1f} min ===")
        print(", ".join(f"{name} {seconds / 60:.1f} min" for name, seconds in walls.items()))
    for figure, measured, target in table:
        print(f"{figure:<{width}}  {measured:<34} target {target}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Sandbox throughput: the worker pool against a fresh process per run (``run_fresh``).

Run it from the repository root::

    python bench/bench_sandbox.py            # 200 programs, config.workers threads each
    python bench/bench_sandbox.py --n 500 --isolation basic

Both runners verify the same small programs (a function plus asserts; about a
third fail) with the same limits and the same parallelism (``--workers``), in the
same process. It prints verifications/s for each and, last, their ratio, and
appends one JSON line to ``bench/results/sandbox.jsonl``. The pool's time includes
starting its workers. Target: a ratio of at least 10 and at least 100/s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from _results import FOLDER, append, machine
from rich.progress import Progress

from selfimprove.config import SandboxConfig
from selfimprove.sandbox import ExecResult, SandboxPool, run_fresh

RESULTS = FOLDER / "sandbox.jsonl"

# (function source, right answer, wrong answer) for f(x); wrong ones fail the asserts.
_FUNCTIONS = [
    ("def f(x):\n    return x * 2\n", lambda x: x * 2),
    ("def f(x):\n    return x * x + 1\n", lambda x: x * x + 1),
    ("def f(x):\n    return sum(range(x))\n", lambda x: sum(range(x))),
    ("def f(x):\n    return str(x)[::-1]\n", lambda x: str(x)[::-1]),
    ("def f(x):\n    return [i for i in range(x) if i % 3 == 0]\n", lambda x: [i for i in range(x) if i % 3 == 0]),
    ("def f(x):\n    return max(x, 10 - x)\n", lambda x: max(x, 10 - x)),
]  # fmt: skip


def make_programs(n: int, seed: int = 0) -> list[str]:
    """``n`` programs: a function and three asserts; about a third have a bug."""
    rng = random.Random(seed)
    programs = []
    for i in range(n):
        source, oracle = _FUNCTIONS[i % len(_FUNCTIONS)]
        if rng.random() < 1 / 3:  # an off-by-one bug (or a missing reversal)
            bug = ("[::-1]", "") if "[::-1]" in source else ("return ", "return 1 + ")
            source = source.replace(*bug, 1)
        checks = [rng.randrange(0, 20) for _ in range(3)]
        asserts = "".join(f"assert f({x}) == {oracle(x)!r}, 'f({x})'\n" for x in checks)
        programs.append(source + asserts)
    return programs


def _timed(label: str, runner: Callable[[str], ExecResult], programs: list[str], workers: int):
    """Run ``programs`` over ``workers`` threads with a progress bar; (seconds, results)."""
    with Progress(transient=True) as progress, ThreadPoolExecutor(workers) as executor:
        task = progress.add_task(label, total=len(programs))
        start = time.perf_counter()
        results = []
        for result in executor.map(runner, programs):
            results.append(result)
            progress.advance(task)
        return time.perf_counter() - start, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="programs to verify")
    parser.add_argument("--workers", type=int, default=SandboxConfig().workers)
    parser.add_argument("--isolation", choices=["auto", "basic"], default="auto")
    args = parser.parse_args()
    config = SandboxConfig(workers=args.workers)
    programs = make_programs(args.n)

    start = time.perf_counter()
    with SandboxPool(config, isolation=args.isolation) as pool:
        startup = time.perf_counter() - start
        pool_s, pooled = _timed("pool", pool.run, programs, args.workers)
        isolation = pool.isolation
    pool_s += startup

    def fresh(code: str) -> ExecResult:
        return run_fresh(code, config, isolation=args.isolation)

    fresh_s, naive = _timed("run_fresh", fresh, programs, args.workers)
    if [r.status for r in pooled] != [r.status for r in naive]:
        raise SystemExit("pool and run_fresh disagree on some verdicts; the benchmark is void")

    record = {
        **machine(),
        "programs": args.n,
        "passing": sum(r.ok for r in pooled),
        "workers": args.workers,
        "isolation": isolation["mode"],
        "pool_startup_s": round(startup, 4),
        "pool_per_s": round(args.n / pool_s, 1),
        "fresh_per_s": round(args.n / fresh_s, 1),
        "ratio": round(fresh_s / pool_s, 1),
    }
    append(RESULTS, record)
    print(f"isolation: {isolation}")
    print(
        f"{args.n} programs ({record['passing']} pass), {args.workers} workers, {os.cpu_count()} cpus"
    )
    print(
        f"pool:      {record['pool_per_s']:8.1f} verifications/s (start-up {startup:.3f}s included)"
    )
    print(f"run_fresh: {record['fresh_per_s']:8.1f} verifications/s")
    print(f"ratio (pool / run_fresh): {record['ratio']:.1f}x")


if __name__ == "__main__":
    main()

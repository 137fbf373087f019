"""Loop overhead: the share of a round's wall time spent outside model calls, verification
and training.

Run it from the repository root (``make bench`` runs the smaller default; about
3 minutes on 2 idle CPU cores)::

    python bench/bench_overhead.py                       # one round, demo settings scaled down
    python bench/bench_overhead.py --heldout 50 --tasks-per-round 120 --max-steps 30   # the demo

It runs one real round of the loop (the embedded student, the sandbox, Chroma,
TRL; the demo's settings with fewer tasks by default) and times, as wall-clock
intervals, every call of the three kinds of work a round exists for:

- model calls: ``TransformersModel.generate`` (sampling, self-debug, evaluation);
- verification: ``Grader.grade`` (the sandbox);
- training: ``train_round`` (TRL, LoRA merge, the atomic save).

Everything else in round 1, from its ``round_started`` event to its ``gate``
event, is overhead: the graph and checkpoints, the example store (its MiniLM
embeddings included), building datasets, loading models from disk, reports and
events. Overlapping intervals are merged, so nothing counts twice. It prints each
part's seconds and, last, the overhead's share of the round (target < 5%), and
appends one JSON line to ``bench/results/overhead.jsonl``.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _results import FOLDER, append, machine

import selfimprove.trainers
from selfimprove.api import demo_config, run_loop
from selfimprove.memory import ChromaStore, MiniLMEmbeddings
from selfimprove.models.local import TransformersModel
from selfimprove.tasks.verifiers import Grader

RESULTS = FOLDER / "overhead.jsonl"


def _overlap(within: Intervals, timer: Intervals, kind: str, start: float, end: float) -> float:
    """Seconds of ``kind`` (in ``within``) that fall inside any of ``timer``'s intervals."""
    both = Intervals()
    both.spans = {"a": within.spans.get(kind, []), **timer.spans}
    return within.seconds(start, end, {kind}) + timer.seconds(start, end) - both.seconds(start, end)


class Intervals:
    """Wall-clock intervals of timed calls, by kind; thread-safe."""

    def __init__(self) -> None:
        self.spans: dict[str, list[tuple[float, float]]] = {}
        self._lock = threading.Lock()

    def timed(self, kind: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self.spans.setdefault(kind, []).append((start, time.perf_counter()))

        return wrapper

    def seconds(self, start: float, end: float, kinds: set[str] | None = None) -> float:
        """Length of the union of the intervals of ``kinds`` (all) clipped to [start, end]."""
        spans = sorted(
            (max(a, start), min(b, end))
            for kind, found in self.spans.items()
            if kinds is None or kind in kinds
            for a, b in found
            if b > start and a < end
        )
        total, reach = 0.0, start
        for a, b in spans:
            if b > reach:
                total += b - max(a, reach)
                reach = b
        return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heldout", type=int, default=10, help="held-out tasks per suite")
    parser.add_argument("--tasks-per-round", type=int, default=40)
    parser.add_argument("--max-steps", type=int, default=8, help="SFT steps in the round")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-overhead"))
    args = parser.parse_args()

    config = demo_config(rounds=1, out_dir=args.out)
    config.tasks.heldout_per_suite = args.heldout
    config.loop.tasks_per_round = args.tasks_per_round
    config.training.max_steps = args.max_steps
    config.loop.health_checks = False  # measure the round, never pause for an operator
    shutil.rmtree(args.out, ignore_errors=True)

    timer, within = Intervals(), Intervals()
    TransformersModel.generate = timer.timed("model", TransformersModel.generate)
    # Parts of the overhead, reported, not subtracted (the store's time holds its embedding).
    MiniLMEmbeddings.embed = within.timed("embedding", MiniLMEmbeddings.embed)
    TransformersModel.load = classmethod(
        within.timed("loading models", TransformersModel.load.__func__)
    )
    for name in ("add", "search", "find", "get"):
        setattr(ChromaStore, name, within.timed("store", getattr(ChromaStore, name)))
    Grader.grade = timer.timed("verification", Grader.grade)
    # real_deps imports train_round from the package when the run starts
    selfimprove.trainers.train_round = timer.timed("training", selfimprove.trainers.train_round)
    marks: dict[str, float] = {}

    def on_event(kind: str, data: dict[str, Any]) -> None:
        if kind in ("round_started", "gate") and data.get("round") == 1:
            marks[kind] = time.perf_counter()

    started = time.perf_counter()
    run_loop(config, on_event=on_event)
    whole = time.perf_counter() - started
    start, end = marks["round_started"], marks["gate"]
    wall = end - start
    parts = {
        kind: timer.seconds(start, end, {kind}) for kind in ("model", "verification", "training")
    }
    overhead = wall - timer.seconds(start, end)
    share = overhead / wall
    # The parts of the overhead: each kind's time outside model calls, verification and training.
    outside = {
        kind: within.seconds(start, end, {kind}) - _overlap(within, timer, kind, start, end)
        for kind in ("embedding", "loading models", "store")
    }
    record = {
        **machine(),
        "heldout_per_suite": args.heldout,
        "tasks_per_round": args.tasks_per_round,
        "max_steps": args.max_steps,
        "run_s": round(whole, 1),
        "round_s": round(wall, 1),
        **{f"{kind}_s": round(s, 1) for kind, s in parts.items()},
        "overhead_s": round(overhead, 1),
        "overhead_share": round(share, 4),
        "overhead_parts_s": {kind: round(s, 1) for kind, s in outside.items()},
        "overhead_share_embedding_as_model": round((overhead - outside["embedding"]) / wall, 4),
    }
    append(RESULTS, record)
    print(f"run (baseline + round 1): {whole:.1f} s; round 1: {wall:.1f} s")
    for kind, seconds in parts.items():
        print(f"  {kind:<13} {seconds:7.1f} s  {seconds / wall:6.1%}")
    print(f"  {'overhead':<13} {overhead:7.1f} s  {share:6.1%}, of which:")
    for kind, seconds in outside.items():
        print(f"    {kind:<15} {seconds:5.1f} s")
    print(
        "overhead share with MiniLM embedding counted as a model call: "
        f"{record['overhead_share_embedding_as_model']:.1%}"
    )
    print(f"overhead share of the round: {share:.1%} (target < 5%)")


if __name__ == "__main__":
    main()

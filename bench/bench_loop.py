"""The central claim, measured: the full loop against plain rejection-sampling SFT at equal compute.

Run it from the repository root (``make bench-loop``; about 20 minutes on 2 CPU
cores with the defaults, one round per arm)::

    python bench/bench_loop.py
    python bench/bench_loop.py --rounds 2 --max-steps 30

Both arms start from the same student, train the same number of rounds on the
same training tasks and are scored on the same held-out tasks (greedy pass@1;
the baseline evaluation is run once and shared):

- **rejection**: sample k answers per task, keep the verified ones, SFT on them
  (self-debug, error injection and retrieval off; ``training.method: sft``);
- **full**: the loop as ``--config`` sets it up (default: the demo's settings
  with ``training.method: sft_dpo``): self-debug, error injection, SFT on the
  verified answers and fixes, then DPO on (correct, wrong) and (correct,
  injected error) pairs.

Equal compute means the rejection arm is never given less, measured: the full
arm runs first. Training: the rejection arm trains as many SFT steps as fit in
the full arm's measured training time at the full arm's own measured seconds per
SFT step (a DPO step, chosen and rejected plus a reference pass, costs several
SFT steps). Generation: it samples enough answers per task to cover the full
arm's extra self-debug generations.
It prints both arms' rounds and, last, the held-out pass@1 of each and the
difference, and appends one JSON line to ``bench/results/loop.jsonl``.
"""

from __future__ import annotations

import argparse
import math
import shutil
from pathlib import Path

from _results import FOLDER, append, machine

from selfimprove.api import demo_config, run_loop
from selfimprove.config import Config, load_config
from selfimprove.eval.report import RoundRecord
from selfimprove.trainers import load_manifest

RESULTS = FOLDER / "loop.jsonl"


def rejection_config(full: Config, samples_per_task: int, max_steps: int, out: Path) -> Config:
    """The baseline arm: the same run with every agent off and SFT only."""
    config = full.model_copy(deep=True)
    config.loop.self_debug = False
    config.loop.inject_errors = False
    config.loop.retrieve_k = 0
    config.loop.samples_per_task = samples_per_task
    config.loop.out_dir = out
    config.training.method = "sft"
    config.training.max_steps = max_steps
    return config


def generations(records: list[RoundRecord]) -> int:
    """Student completions generated while collecting (samples plus self-debug retries)."""
    return sum(
        r.counts.get("samples", 0) + r.counts.get("self_debug/generated", 0) for r in records
    )


def equal_time_sft_steps(full: Config, records: list[RoundRecord]) -> int:
    """SFT steps per round that take as long as the full arm's training did (measured)."""
    seconds, sft_seconds, sft_steps = 0.0, 0.0, 0
    for record in records[1:]:
        if record.model_path and (Path(record.model_path) / "manifest.json").exists():
            for stage in load_manifest(record.model_path).stages:
                seconds += stage.seconds
                if stage.name == "sft":
                    sft_seconds, sft_steps = sft_seconds + stage.seconds, sft_steps + stage.steps
    if not sft_steps:  # no SFT stage to time: count a DPO step as two SFT steps
        return full.training.max_steps * (3 if full.training.method == "sft_dpo" else 2)
    per_round = seconds / max(len(records) - 1, 1)
    return max(full.training.max_steps, math.ceil(per_round / (sft_seconds / sft_steps)))


def summary(name: str, records: list[RoundRecord]) -> dict:
    last = records[-1]
    promoted = [r for r in records if r.promoted]
    return {
        "arm": name,
        "baseline": records[0].metrics["heldout_pass_at_1"],
        "final": promoted[-1].metrics["heldout_pass_at_1"],
        "rounds": [
            {"round": r.round, "promoted": r.promoted, **r.metrics, "minutes": _minutes([r])}
            for r in records
        ],
        "promotions": len(promoted) - 1,
        "generations": generations(records),
        "train_steps": sum(len(r.train_loss) for r in records),  # SFT and DPO steps
        "train_minutes": round(sum(r.timings.get("train", 0.0) for r in records) / 60, 2),
        "minutes": _minutes(records[1:]),
        "last_round": last.round,
    }


def _minutes(records: list[RoundRecord]) -> float:
    return round(sum(sum(r.timings.values()) for r in records) / 60, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="YAML for the full arm (default: the demo's)")
    parser.add_argument("--rounds", type=int, help="rounds per arm")
    parser.add_argument("--heldout", type=int, help="held-out tasks per suite")
    parser.add_argument("--tasks-per-round", type=int)
    parser.add_argument("--max-steps", type=int, help="steps per training stage (default 16)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-loop"))
    parser.add_argument(
        "--reuse-full",
        action="store_true",
        help="take the full arm from a finished OUT/full (same options) and run only the other",
    )
    args = parser.parse_args()

    if args.config:
        full = load_config(args.config)
    else:
        full = demo_config(rounds=1)
        full.training.method = "sft_dpo"
        full.training.max_steps = 16
    if args.max_steps is not None:
        full.training.max_steps = args.max_steps
    if args.rounds is not None:
        full.loop.rounds = args.rounds
    if args.heldout is not None:
        full.tasks.heldout_per_suite = args.heldout
    if args.tasks_per_round is not None:
        full.loop.tasks_per_round = args.tasks_per_round
    if args.reuse_full:
        if not (args.out / "full" / "report.json").exists() or (args.out / "rejection").exists():
            raise SystemExit(f"--reuse-full needs a finished {args.out}/full and no rejection arm")
    elif args.out.exists():
        raise SystemExit(f"{args.out} exists: delete it or pass another --out")
    full.loop.out_dir = args.out / "full"
    full.store = full.store.model_copy(update={"path": args.out / "full" / "store"})

    print(f"[full] {full.loop.rounds} rounds, method {full.training.method}")
    full_records = run_loop(full, resume=args.reuse_full)
    full_sum = summary("full", full_records)

    tasks = full.loop.tasks_per_round or full.tasks.train_per_suite * len(full.tasks.suites)
    per_round = full_sum["generations"] / max(full.loop.rounds, 1)
    samples = max(full.loop.samples_per_task, math.ceil(per_round / tasks))
    steps = equal_time_sft_steps(full, full_records)
    rs = rejection_config(full, samples, steps, args.out / "rejection")
    rs.store = rs.store.model_copy(update={"path": args.out / "rejection" / "store"})
    # Same starting model, same held-out tasks: reuse the full arm's baseline evaluation.
    baseline = Path(rs.loop.out_dir) / "round-0" / "eval.json"
    baseline.parent.mkdir(parents=True)
    shutil.copy(Path(full.loop.out_dir) / "round-0" / "eval.json", baseline)
    print(f"[rejection] {rs.loop.rounds} rounds, {samples} samples a task, {steps} SFT steps")
    rs_sum = summary("rejection", run_loop(rs))

    record = {
        **machine(),
        "tasks_per_round": tasks,
        "heldout_per_suite": full.tasks.heldout_per_suite,
        "full": full_sum,
        "rejection": rs_sum,
        "difference": round(full_sum["final"] - rs_sum["final"], 4),
    }
    append(RESULTS, record)
    for arm in (rs_sum, full_sum):
        print(
            f"{arm['arm']:>9}: {arm['generations']} generations, {arm['train_steps']} train steps "
            f"({arm['train_minutes']:.1f} min), {arm['promotions']} promotions, "
            f"{arm['minutes']:.1f} min in all"
        )
    print(f"held-out pass@1 at start:       {full_sum['baseline']:.1%}")
    print(f"held-out pass@1, rejection SFT: {rs_sum['final']:.1%}")
    print(f"held-out pass@1, full loop:     {full_sum['final']:.1%}")
    print(f"full - rejection: {record['difference'] * 100:+.1f} points")


if __name__ == "__main__":
    main()

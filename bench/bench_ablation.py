"""Ablation: the loop with every agent on, with each one switched off in turn, and with all off.

Run it from the repository root (``make bench-ablation``; about 50 minutes on 2 CPU
cores with the defaults: 8 arms of 2 rounds, 24 tasks a round, 80 held-out tasks)::

    python bench/bench_ablation.py
    python bench/bench_ablation.py --arms all,no_augment --rounds 1

Every arm starts from the same student, trains the same number of rounds with the
same steps on the same number of tasks per round, and is scored on the same
held-out tasks (greedy pass@1; the baseline evaluation is run once and shared).
The arms:

- ``all``: self-debug, error injection (programmatic and LLM self-edit), workflow
  memory, failure-driven augmentation, curriculum and curation, SFT then DPO;
- ``no_<agent>``: the same with that agent off;
- ``none``: every agent off: plain rejection-sampling self-training (SFT only,
  as the method prescribes).

The critic and self-review are measurement only (they change no training data),
so they have no arm; the ``all`` arm reports their numbers. Augmentation and the
curriculum act from round 2 on (they use round 1's results), hence two rounds.
Finished arms are kept in ``--out`` and skipped on a rerun, so an interrupted
bench continues. It prints the table last and appends one JSON line per run to
``bench/results/ablation.jsonl``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from _results import FOLDER, append, machine

from selfimprove.api import demo_config, run_loop
from selfimprove.checkpoints import has_checkpoints
from selfimprove.config import Config
from selfimprove.eval.report import RoundRecord, read_report

RESULTS = FOLDER / "ablation.jsonl"
AGENTS = {  # arm name -> the switches it turns off
    "self_debug": ("self_debug",),
    "inject": ("inject_errors", "self_edit"),
    "workflows": ("workflows",),
    "augment": ("augment",),
    "curriculum": ("curriculum",),
    "curate": ("curate",),
}
ARMS = ("all", *(f"no_{name}" for name in AGENTS), "none")


def all_on(rounds: int, heldout: int, tasks: int, sft_steps: int, dpo_steps: int) -> Config:
    """The ``all`` arm: the demo's student and tasks, every agent on, SFT then DPO."""
    config = demo_config(rounds=rounds)
    config.tasks.heldout_per_suite = heldout
    loop = config.loop
    loop.tasks_per_round = tasks
    loop.self_debug = loop.inject_errors = loop.self_edit = True
    loop.workflows = loop.augment = loop.curriculum = loop.curate = True
    loop.critic, loop.critic_samples, loop.self_review = True, 12, 8
    config.training.method = "sft_dpo"
    config.training.max_steps = sft_steps
    config.training.dpo_max_steps = dpo_steps
    return config


def arm_config(base: Config, arm: str, out: Path) -> Config:
    config = base.model_copy(deep=True)
    if arm == "none":
        for switches in AGENTS.values():
            for switch in switches:
                setattr(config.loop, switch, False)
        config.loop.critic, config.loop.self_review = False, 0
        config.training.method = "sft"
    elif arm != "all":
        for switch in AGENTS[arm.removeprefix("no_")]:
            setattr(config.loop, switch, False)
    config.loop.out_dir = out / arm
    config.store = config.store.model_copy(update={"path": out / arm / "store"})
    return config


def run_arm(config: Config, baseline: Path | None) -> list[RoundRecord]:
    """Run one arm (or read it when finished), sharing the first arm's baseline evaluation."""
    out = Path(config.loop.out_dir)
    report = out / "report.json"
    if report.exists() and len(read_report(report)) == config.loop.rounds + 1:
        return read_report(report)
    resume = has_checkpoints(out)
    if baseline is not None and not resume:
        (out / "round-0").mkdir(parents=True, exist_ok=True)
        shutil.copy(baseline, out / "round-0" / "eval.json")
    return run_loop(config, resume=resume)


def row(arm: str, records: list[RoundRecord]) -> dict:
    promoted = [r for r in records if r.promoted]
    counts: dict[str, int] = {}
    for record in records[1:]:
        for key, value in record.counts.items():
            counts[key] = counts.get(key, 0) + value
    return {
        "arm": arm,
        "baseline": records[0].metrics["heldout_pass_at_1"],
        "final": promoted[-1].metrics["heldout_pass_at_1"],
        "per_round": [r.metrics["heldout_pass_at_1"] for r in records[1:]],
        "promoted": [r.promoted for r in records[1:]],
        "train_steps": sum(len(r.train_loss) for r in records),
        "minutes": round(sum(sum(r.timings.values()) for r in records[1:]) / 60, 2),
        "counts": counts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, from {ARMS}")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--heldout", type=int, default=20, help="held-out tasks per suite")
    parser.add_argument("--tasks-per-round", type=int, default=24)
    parser.add_argument("--sft-steps", type=int, default=8)
    parser.add_argument("--dpo-steps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-ablation"))
    args = parser.parse_args()
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise SystemExit(f"unknown arms {unknown}; choose from {ARMS}")

    base = all_on(args.rounds, args.heldout, args.tasks_per_round, args.sft_steps, args.dpo_steps)
    rows, baseline = [], None
    for arm in arms:
        config = arm_config(base, arm, args.out)
        print(f"[{arm}] {config.loop.rounds} rounds, method {config.training.method}", flush=True)
        records = run_arm(config, baseline)
        baseline = baseline or Path(config.loop.out_dir) / "round-0" / "eval.json"
        rows.append(row(arm, records))

    record = {
        **machine(),
        "rounds": args.rounds,
        "heldout_per_suite": args.heldout,
        "tasks_per_round": args.tasks_per_round,
        "arms": rows,
    }
    append(RESULTS, record)
    print("\n| arm | held-out pass@1 | per round | promoted | train steps | min |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        rounds = " → ".join(f"{x:.1%}" for x in r["per_round"])
        promoted = "/".join("yes" if p else "no" for p in r["promoted"])
        print(
            f"| {r['arm']} | {r['final']:.1%} | {rounds} | {promoted} | {r['train_steps']} "
            f"| {r['minutes']:.1f} |"
        )
    print(f"baseline (shared): {rows[0]['baseline']:.1%}")


if __name__ == "__main__":
    main()

"""Training speed: our SFT/DPO wrappers against a raw TRL script, and SFT batching modes.

Run it from the repository root (``make bench``; about 7 minutes on 2 idle CPU cores)::

    python bench/bench_training.py
    python bench/bench_training.py --sft-steps 4 --dpo-steps 3 --no-batching
    python bench/bench_training.py --threads 1     # on a machine others keep busy

Both arms train the real student (SmolLM2-135M-Instruct) with LoRA on the same
rows, built like the loop's (``memory.export.sft_dataset`` / ``dpo_dataset`` from
verified answers to built-in training tasks; DPO's rejected side is a planted
error, as error injection makes them):

- **ours**: ``train_sft`` / ``train_dpo`` with a default ``TrainingConfig``
  (merge and save included, but only steps are timed);
- **raw**: a plain TRL script: ``SFTTrainer`` / ``DPOTrainer`` with a peft
  ``LoraConfig``, the same settings written out by hand (batch size, learning
  rate, ``max_length``, seed, bf16 autocast on CPU, no activation checkpointing,
  completion-only loss), on the same rows as chat turns.

A step's time is the interval between two ``on_step_end`` callbacks (data,
forward, backward, optimizer, logging); the first step of every run is the
warm-up and is left out. Each comparison starts with a short untimed run (the
first run in a process is slower), then the arms alternate, swapping places
every repeat (ours, raw, raw, ours ...). Same seed and rows, so both see the same
batches (their losses agree to the bit, which checks the raw script mirrors
ours): s/step is each arm's median, the ratio the median over timed steps of
ours' time over raw's for the same step, and the spread of those step ratios
shows how much a busy machine blurred it.

Then our SFT trains once with each ``TrainingConfig.packing``: ``none`` (padded
batches, the default), ``padding_free`` (a batch's rows joined into one sequence:
the same rows per step) and ``packed`` (rows packed into ``max_length``
sequences: more rows per step), counting tokens as the non-padding tokens the
model reads per second; the first step's loss of ``none`` and ``padding_free``
should agree (same rows).

It prints seconds per step and tokens/s and, last, the ratios (target: ours/raw
at most 1.05 for SFT and DPO), and appends one JSON line to
``bench/results/training.jsonl``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import torch
from _results import FOLDER, append, machine
from datasets import Dataset
from peft import LoraConfig
from rich.progress import Progress
from transformers import AutoTokenizer, PrinterCallback, TrainerCallback
from transformers.utils import logging as hf_logging
from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

from selfimprove.agents.inject import propose
from selfimprove.config import TrainingConfig
from selfimprove.memory.export import dpo_dataset, sft_dataset
from selfimprove.models.student import resolve_model_path
from selfimprove.tasks import SUITES, builtin_tasks
from selfimprove.trainers import train_dpo, train_sft
from selfimprove.types import Example, Task

RESULTS = FOLDER / "training.jsonl"
TARGET = 1.05
BATCHING = ("none", "padding_free", "packed")  # TrainingConfig.packing
WARMUP_STEPS = 2  # the untimed run before each comparison


class StepClock(TrainerCallback):
    """Times each optimizer step and counts the non-padding tokens its forward passes read."""

    def __init__(self, on_step: Callable[[], None] = lambda: None) -> None:
        self.steps: list[tuple[float, int]] = []  # (seconds, tokens) per step
        self.losses: list[float] = []
        self._on_step = on_step
        self._mark = 0.0
        self._tokens = 0
        self._hook: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._hook = kwargs["model"].register_forward_pre_hook(self._count, with_kwargs=True)
        self._mark = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        now = time.perf_counter()
        self.steps.append((now - self._mark, self._tokens))
        self._mark, self._tokens = now, 0
        self._on_step()

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._hook is not None:
            self._hook.remove()

    def _count(self, module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        mask, ids = kwargs.get("attention_mask"), kwargs.get("input_ids")
        if mask is not None:
            self._tokens += int(mask.sum())
        elif ids is not None:  # padding-free and packed batches carry no padding
            self._tokens += ids.numel()

    def timed(self, warmup: int = 1) -> list[tuple[float, int]]:
        return self.steps[warmup:]


# ---- data, built like the loop's ----


def make_examples(rows: int, seed: int) -> tuple[list[Example], list[Example]]:
    """Verified answers to built-in training tasks, and pairs with a planted error."""
    per_suite = -(-rows // len(SUITES))
    tasks = [t for s in SUITES for t in builtin_tasks(s, split="train", n=per_suite, seed=seed)]
    rng = random.Random(seed)
    rng.shuffle(tasks)
    positives, pairs = [], []
    for task in tasks[:rows]:
        answer = _answer(task)
        positives.append(
            Example(kind="positive", prompt=task.prompt, completion=answer, task_id=task.id)
        )
        wrong = next(iter(propose(task, answer, rng)), None)
        rejected = wrong.text if wrong else f"{answer} (unsure)"
        pairs.append(
            Example(
                kind="pair",
                prompt=task.prompt,
                completion=answer,
                rejected=rejected,
                task_id=task.id,
            )
        )
    return positives, pairs


def _answer(task: Task) -> str:
    if task.kind == "code":
        return f"```python\n{task.reference}```"
    return f"The answer is {task.answer}."


def as_chat(dataset: Dataset, answers: list[str]) -> Dataset:
    """Plain rows as user/assistant turns, written out the way a raw TRL script would."""
    return Dataset.from_list(
        [
            {"prompt": [{"role": "user", "content": row["prompt"]}]}
            | {name: [{"role": "assistant", "content": row[name]}] for name in answers}
            for row in dataset
        ]
    )


# ---- the arms ----


def ours(method: str, base: Path, data: Dataset, config: TrainingConfig, clock: StepClock) -> None:
    train = train_sft if method == "sft" else train_dpo
    with tempfile.TemporaryDirectory(prefix="bench-ours-") as scratch:
        train(base, data, config, Path(scratch) / "model", progress=False, callbacks=[clock])


def raw(method: str, base: Path, data: Dataset, config: TrainingConfig, clock: StepClock) -> None:
    """The raw TRL script: every setting that matters written out, mirroring ours."""
    on_cpu = not torch.cuda.is_available()
    tokenizer = AutoTokenizer.from_pretrained(base)
    lora = LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    with tempfile.TemporaryDirectory(prefix="bench-raw-") as scratch:
        common = {
            "output_dir": scratch,
            "max_steps": config.max_steps,
            "per_device_train_batch_size": config.batch_size,
            "learning_rate": 2e-4,
            "max_length": 256,
            "seed": config.seed,
            "use_cpu": on_cpu,
            "bf16": on_cpu or torch.cuda.is_bf16_supported(),
            "activation_checkpointing": False,
            "logging_steps": 1,
            "save_strategy": "no",
            "report_to": "none",
            "disable_tqdm": True,
        }
        if method == "sft":
            args = SFTConfig(**common, completion_only_loss=True, packing=False)
            trainer: Any = SFTTrainer(
                model=str(base),
                args=args,
                train_dataset=as_chat(data, ["completion"]),
                processing_class=tokenizer,
                peft_config=lora,
                callbacks=[clock],
            )
        else:
            trainer = DPOTrainer(
                model=str(base),
                ref_model=None,
                args=DPOConfig(**common, beta=0.1),
                train_dataset=as_chat(data, ["chosen", "rejected"]),
                processing_class=tokenizer,
                peft_config=lora,
                callbacks=[clock],
            )
        trainer.remove_callback(PrinterCallback)  # it prints every step's log
        trainer.train()


# ---- measuring ----


def compare(
    method: str,
    base: Path,
    data: Dataset,
    config: TrainingConfig,
    repeats: int,
    advance: Callable[[], None],
) -> dict[str, Any]:
    """Ours and raw in turn ``repeats`` times: seconds per step after warm-up, and their ratio.

    Same seed, same rows: both arms train on the same batches in the same order (the
    losses agree to the bit when the settings do): each timed step of ours is paired
    with the same step of raw, and the ratio is the median of the pairs' ratios (a
    busy machine's spikes hit single steps; the spread shows how noisy it was).
    """
    # The first run of a kind in a process is slower (measured: 15-70% per step, whichever
    # arm it was): a short untimed run takes that, then the arms swap places every repeat.
    raw(
        method,
        base,
        data,
        config.model_copy(update={"max_steps": WARMUP_STEPS}),
        StepClock(advance),
    )
    clocks: dict[str, list[StepClock]] = {"ours": [], "raw": []}
    arms = [("ours", ours), ("raw", raw)]
    for repeat in range(repeats):
        for name, arm in arms if repeat % 2 == 0 else arms[::-1]:
            clock = StepClock(advance)
            arm(method, base, data, config, clock)
            clocks[name].append(clock)
    steps = {name: [s for c in cs for s, _ in c.timed()] for name, cs in clocks.items()}
    paired = sorted(o / r for o, r in zip(steps["ours"], steps["raw"], strict=True))
    first = clocks["raw"][0].losses
    return {
        "steps": config.max_steps,
        "ours_s_per_step": round(statistics.median(steps["ours"]), 3),
        "raw_s_per_step": round(statistics.median(steps["raw"]), 3),
        "ratio": round(statistics.median(paired), 3),
        "step_ratios": {"min": round(paired[0], 2), "max": round(paired[-1], 2)},
        "total_time_ratio": round(sum(steps["ours"]) / sum(steps["raw"]), 3),
        "same_losses": all(c.losses == first for cs in clocks.values() for c in cs),
        "tokens_per_step": {
            name: [[t for _, t in c.steps] for c in cs] for name, cs in clocks.items()
        },
        "same_tokens": all(
            [t for _, t in c.steps] == [t for _, t in clocks["raw"][0].steps]
            for cs in clocks.values()
            for c in cs
        ),
        "step_seconds": {name: [round(t, 3) for t in times] for name, times in steps.items()},
    }


def batching(
    base: Path, data: Dataset, config: TrainingConfig, advance: Callable[[], None]
) -> dict[str, Any]:
    """Our SFT with each ``packing`` setting: tokens/s, tokens and s per step, first loss."""
    out: dict[str, Any] = {}
    for mode in BATCHING:
        clock = StepClock(advance)
        ours("sft", base, data, config.model_copy(update={"packing": mode}), clock)
        timed = clock.timed()
        seconds, tokens = sum(s for s, _ in timed), sum(t for _, t in timed)
        out[mode] = {
            "tokens_per_s": round(tokens / seconds, 1),
            "tokens_per_step": round(tokens / len(timed)),
            "s_per_step": round(statistics.median(s for s, _ in timed), 3),
            "first_loss": round(clock.losses[0], 4),
        }
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="student name or folder")
    parser.add_argument("--rows", type=int, default=64, help="training rows (SFT) and pairs (DPO)")
    parser.add_argument("--sft-steps", type=int, default=5, help="steps per SFT run (1 warm-up)")
    parser.add_argument("--dpo-steps", type=int, default=4, help="steps per DPO run (1 warm-up)")
    parser.add_argument("--batch-size", type=int, default=TrainingConfig().batch_size)
    parser.add_argument("--dpo-batch-size", type=int, default=4, help="pairs per DPO step")
    parser.add_argument("--sft-repeats", type=int, default=2, help="alternated runs per SFT arm")
    parser.add_argument("--dpo-repeats", type=int, default=1, help="alternated runs per DPO arm")
    parser.add_argument("--batching-steps", type=int, default=3, help="steps per batching mode")
    parser.add_argument("--no-dpo", action="store_true")
    parser.add_argument("--no-batching", action="store_true", help="skip padded/packed tokens/s")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def quiet() -> None:
    """The libraries' own bars and notices would bury the benchmark's."""
    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)


def report(record: dict[str, Any]) -> None:
    print(
        f"{record['rows']} rows, batch {record['batch_size']} (DPO {record['dpo_batch_size']}), "
        f"LoRA r=16, {record['cpus']} cpus "
        f"({record['torch_threads']} torch threads, load {record['load_avg']})"
    )
    for method in ("sft", "dpo"):
        if method in record:
            r = record[method]
            print(
                f"{method.upper()}: ours {r['ours_s_per_step']:6.2f} s/step   raw TRL "
                f"{r['raw_s_per_step']:6.2f} s/step   (median of {len(r['step_seconds']['raw'])} "
                f"steps after warm-up; same losses: {_yes(r['same_losses'])}, same tokens: "
                f"{_yes(r['same_tokens'])})"
            )
    for mode, r in record.get("batching", {}).items():
        print(
            f"SFT packing={mode:12s} {r['tokens_per_s']:7.1f} tokens/s  {r['tokens_per_step']:5d} "
            f"tokens/step  {r['s_per_step']:6.2f} s/step  first loss {r['first_loss']:.4f}"
        )
    for method in ("sft", "dpo"):
        if method in record:
            ratio = record[method]["ratio"]
            verdict = "ok" if ratio <= TARGET else f"ABOVE the {TARGET} target"
            spread = record[method]["step_ratios"]
            print(
                f"ratio {method.upper()} (ours / raw TRL, median over the same steps): "
                f"{ratio:.2f}x ({verdict}; single steps {spread['min']:.2f}-{spread['max']:.2f})"
            )
    if "batching" in record:
        padded = record["batching"]["none"]["tokens_per_s"]
        for mode in BATCHING[1:]:
            ratio = record["batching"][mode]["tokens_per_s"] / padded
            print(f"ratio SFT tokens/s (packing={mode} / none): {ratio:.2f}x")


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)  # 1 is far faster on a machine others keep busy
    quiet()
    base = Path(resolve_model_path(args.model))
    positives, pairs = make_examples(args.rows, args.seed)
    sft_data, dpo_data = sft_dataset(positives), dpo_dataset(pairs)
    config = TrainingConfig(max_steps=args.sft_steps, batch_size=args.batch_size, seed=args.seed)
    dpo_config = config.model_copy(
        update={"max_steps": args.dpo_steps, "batch_size": args.dpo_batch_size}
    )
    total = WARMUP_STEPS + 2 * args.sft_repeats * args.sft_steps
    total += 0 if args.no_dpo else WARMUP_STEPS + 2 * args.dpo_repeats * args.dpo_steps
    total += 0 if args.no_batching else len(BATCHING) * args.batching_steps

    record: dict[str, Any] = {}
    with Progress(transient=True) as progress:
        bar = progress.add_task("training steps", total=total)

        def advance() -> None:
            progress.advance(bar)

        record["sft"] = compare("sft", base, sft_data, config, args.sft_repeats, advance)
        if not args.no_dpo:
            record["dpo"] = compare("dpo", base, dpo_data, dpo_config, args.dpo_repeats, advance)
        if not args.no_batching:
            steps = config.model_copy(update={"max_steps": args.batching_steps})
            record["batching"] = batching(base, sft_data, steps, advance)

    record = {
        **machine(),
        "torch_threads": torch.get_num_threads(),
        "load_avg": round(os.getloadavg()[0], 2),
        "model": args.model,
        "rows": args.rows,
        "batch_size": args.batch_size,
        "dpo_batch_size": args.dpo_batch_size,
        **record,
    }
    append(RESULTS, record)
    report(record)


if __name__ == "__main__":
    main()

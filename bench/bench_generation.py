"""Generation throughput: the loop's generation path against the raw backend call.

Run it from the repository root (``make bench``; about 3 minutes on 2 idle CPU cores)::

    python bench/bench_generation.py                    # 24 held-out prompts, 3 repeats
    python bench/bench_generation.py --per-suite 4 --repeats 1 --no-sampling
    python bench/bench_generation.py --threads 1     # on a machine others keep busy
    python bench/bench_generation.py --server http://127.0.0.1:8000/v1 --server-model NAME

Both arms generate for the same built-in held-out tasks with the real student
(SmolLM2-135M-Instruct) loaded once, same weights and dtype, same batch size,
same ``max_new_tokens`` per task (48 for short answers, 160 for code), left
padding:

- **ours**: ``generate_for_tasks`` over ``TransformersModel`` (what ``evaluate``
  and the collect graph call: chat template, length-sorted batches, the decode
  loop of ``models/decode.py`` that drops finished rows, stop strings);
- **raw**: ``AutoModelForCausalLM.generate`` on the same chat-templated prompts,
  batched in task order, a row ending at EOS or once its generated text holds
  one of the task's stop strings (a plain ``StoppingCriteria``: transformers' own
  ``stop_strings`` also match across the prompt boundary and would end every
  code answer after one token), so both arms do the same job.

Tokens are counted the same way in both: generated ids up to the stop string or
before EOS, padding excluded (ours: ``Completion.tokens``).
Two modes: greedy (held-out evaluation) and sampling (``--samples`` answers per
task at ``--temperature``, the collect step's defaults). Each mode runs a short
warm-up of both arms, then the arms alternate (ours, raw, ours, raw ...); the
tokens/s shown are each arm's median, the ratio the median over repeats of ours
over raw in the same repeat. With ``--server`` a third pair of arms runs
against an OpenAI-compatible server (llama.cpp, vLLM, ``transformers serve``):
``LiteLLMModel`` through ``generate_for_tasks`` against the plain ``openai``
client call; without it that pair is reported "not available".

It prints tokens/s of each arm and, last, the ratios ours/raw (target: at least
0.8), and appends one JSON line to ``bench/results/generation.jsonl``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from _results import FOLDER, append, machine
from rich.progress import Progress
from transformers import StoppingCriteria, StoppingCriteriaList

from selfimprove.config import LoopConfig, ModelConfig
from selfimprove.eval.evaluate import generate_for_tasks, generation_settings
from selfimprove.models.base import cut_at_stop
from selfimprove.models.bounded import bounded
from selfimprove.models.local import TransformersModel
from selfimprove.models.remote import LiteLLMModel
from selfimprove.tasks import SUITES, builtin_tasks
from selfimprove.types import Task

RESULTS = FOLDER / "generation.jsonl"
TARGET = 0.8

Arm = Callable[[Sequence[Task]], tuple[int, list[list[str]]]]
"""Generate for tasks; return (tokens generated, texts per task)."""


def ours_arm(model: Any, n: int, temperature: float, seed: int) -> Arm:
    """The loop's path: ``generate_for_tasks`` over a ``ChatModel``, as ``evaluate`` calls it."""

    def run(tasks: Sequence[Task]) -> tuple[int, list[list[str]]]:
        rows = generate_for_tasks(bounded(model), tasks, n=n, temperature=temperature, seed=seed)
        return sum(c.tokens for r in rows for c in r), [[c.text for c in r] for r in rows]

    return run


def raw_transformers_arm(
    model: Any, tokenizer: Any, batch_size: int, n: int, temperature: float, seed: int
) -> Arm:
    """Plain ``model.generate`` on chat-templated prompts, batches in task order."""
    own = model.generation_config
    eos = own.eos_token_id if isinstance(own.eos_token_id, list) else [own.eos_token_id]
    eos = set(eos) | {tokenizer.eos_token_id}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos)
    samples = n if temperature > 0 else 1
    per_batch = max(1, batch_size // samples)
    sampling = (
        # The same distribution as ours: plain temperature, the model's own top-k/top-p.
        {"do_sample": True, "temperature": temperature, "top_k": own.top_k or 0}
        | {"top_p": own.top_p or 1.0, "num_return_sequences": samples}
        if temperature > 0
        else {"do_sample": False}
    )

    def generate(
        texts: list[str], max_tokens: int, stop: Sequence[str]
    ) -> tuple[int, list[list[int]]]:
        batch = tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
        prompt_len = batch["input_ids"].shape[1]
        with torch.inference_mode():
            out = model.generate(
                **batch.to(model.device),
                max_new_tokens=max_tokens,
                pad_token_id=pad,
                eos_token_id=sorted(eos),
                stopping_criteria=StoppingCriteriaList([_StopText(tokenizer, stop, prompt_len)]),
                **sampling,
            )
        kept = []
        for row in out[:, prompt_len:].tolist():
            # Finished rows are padded with the pad id (EOS here): keep what came before.
            end = next((k for k, t in enumerate(row) if t in eos or t == pad), len(row))
            kept.append(row[:end])
        return sum(map(len, kept)), kept

    def run(tasks: Sequence[Task]) -> tuple[int, list[list[str]]]:
        side, tokenizer.padding_side = tokenizer.padding_side, "left"
        texts: list[list[str]] = [[] for _ in tasks]
        tokens = 0
        torch.manual_seed(seed)
        try:
            for (max_tokens, stop), indices in _groups(tasks).items():
                for start in range(0, len(indices), per_batch):
                    chunk = indices[start : start + per_batch]
                    prompts = [
                        tokenizer.apply_chat_template(
                            [{"role": "user", "content": tasks[i].prompt}],
                            tokenize=False,
                            add_generation_prompt=True,
                        )
                        for i in chunk
                    ]
                    count, rows = generate(prompts, max_tokens, stop)
                    tokens += count
                    decoded = tokenizer.batch_decode(rows, skip_special_tokens=True)
                    for j, text in enumerate(decoded):
                        texts[chunk[j // samples]].append(text)
        finally:
            tokenizer.padding_side = side
        return tokens, texts

    return run


def raw_server_arm(
    base_url: str, served: str, concurrency: int, n: int, temperature: float, seed: int
) -> Arm:
    """The plain ``openai`` client: one chat request per task (``n`` choices), concurrent."""
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key="none")
    samples = n if temperature > 0 else 1

    def one(task: Task) -> tuple[int, list[str]]:
        max_tokens, stop = generation_settings(task)
        used, texts = 0, []
        while len(texts) < samples:  # servers that ignore n (transformers serve) get asked again
            left = samples - len(texts)
            response = client.chat.completions.create(
                model=served,
                messages=[{"role": "user", "content": task.prompt}],
                max_tokens=max_tokens,
                temperature=temperature,
                stop=list(stop),
                seed=seed + len(texts),
                **({"n": left} if left > 1 else {}),
            )
            used += response.usage.completion_tokens if response.usage else 0
            texts += [cut_at_stop(c.message.content or "", stop)[0] for c in response.choices]
        return used, texts[:samples]

    def run(tasks: Sequence[Task]) -> tuple[int, list[list[str]]]:
        with ThreadPoolExecutor(min(concurrency, len(tasks))) as pool:
            done = list(pool.map(one, tasks))
        return sum(d[0] for d in done), [d[1] for d in done]

    return run


def _groups(tasks: Sequence[Task]) -> dict[tuple[int, tuple[str, ...]], list[int]]:
    """Task indices by ``(max_new_tokens, stop strings)``, the loop's settings per task kind."""
    groups: dict[tuple[int, tuple[str, ...]], list[int]] = {}
    for i, task in enumerate(tasks):
        groups.setdefault(generation_settings(task), []).append(i)
    return groups


class _StopText(StoppingCriteria):
    """Ends a row once the text it generated holds a stop string.

    It decodes only the generated tail long enough to hold the longest stop string
    (a token decodes to at least one character), as our decode loop does.
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str], prompt_len: int) -> None:
        self.tokenizer, self.stop, self.prompt_len = tokenizer, stop, prompt_len
        self.window = max(map(len, stop)) + 4

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        start = max(self.prompt_len, input_ids.shape[1] - self.window)
        texts = self.tokenizer.batch_decode(input_ids[:, start:], skip_special_tokens=True)
        done = [any(s in text for s in self.stop) for text in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def alternate(
    label: str, arms: dict[str, Arm], tasks: Sequence[Task], repeats: int, warmup: int
) -> dict[str, Any]:
    """Warm each arm up on ``warmup`` tasks, then run them in turn ``repeats`` times.

    Returns each arm's median tokens/s, its runs, and the texts of its last run.
    """
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in arms}
    texts: dict[str, list[list[str]]] = {}
    with Progress(transient=True) as progress:
        bar = progress.add_task(label, total=len(arms) * (repeats + 1))
        for arm in arms.values():
            arm(tasks[:warmup])
            progress.advance(bar)
        for _ in range(repeats):
            for name, arm in arms.items():
                start = time.perf_counter()
                tokens, texts[name] = arm(tasks)
                seconds = time.perf_counter() - start
                runs[name].append(
                    {"tokens": tokens, "seconds": round(seconds, 3), "per_s": tokens / seconds}
                )
                progress.advance(bar)
    medians = {name: statistics.median(r["per_s"] for r in rs) for name, rs in runs.items()}
    return {"per_s": medians, "runs": runs, "texts": texts}


def paired_ratio(runs: dict[str, list[dict[str, float]]], a: str, b: str) -> float:
    """Median over repeats of ``a``'s tokens/s over ``b``'s in the same repeat (run side by side)."""
    return statistics.median(x["per_s"] / y["per_s"] for x, y in zip(runs[a], runs[b], strict=True))


def agreement(a: list[list[str]], b: list[list[str]], tasks: Sequence[Task]) -> float:
    """Share of rows whose texts match once cut at the task's stop strings (a sanity check)."""
    same: list[bool] = []
    for task, xs, ys in zip(tasks, a, b, strict=True):
        stop = generation_settings(task)[1]
        same += [
            cut_at_stop(x, stop)[0].strip() == cut_at_stop(y, stop)[0].strip()
            for x, y in zip(xs, ys, strict=True)
        ]
    return sum(same) / max(len(same), 1)


def other_backends() -> dict[str, bool]:
    """Whether the optional local servers are installed (neither is a dependency)."""
    return {name: importlib.util.find_spec(name) is not None for name in ("llama_cpp", "vllm")}


def parse_args() -> argparse.Namespace:
    defaults, loop = ModelConfig(), LoopConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=defaults.model, help="student name or folder")
    parser.add_argument("--per-suite", type=int, default=6, help="held-out prompts per suite")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per arm and mode")
    parser.add_argument("--warmup", type=int, default=4, help="tasks in each arm's warm-up run")
    parser.add_argument("--samples", type=int, default=loop.samples_per_task)
    parser.add_argument("--temperature", type=float, default=defaults.temperature)
    parser.add_argument("--no-sampling", action="store_true", help="greedy mode only")
    parser.add_argument("--dtype", default=defaults.dtype, help="auto, float32, bfloat16")
    parser.add_argument("--server", help="OpenAI-compatible base URL, e.g. http://host:8000/v1")
    parser.add_argument("--server-model", help="the model name the server serves")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.server and not args.server_model:
        parser.error("--server needs --server-model (the name the server serves)")
    return args


def measure_mode(
    args: argparse.Namespace, student: TransformersModel, tasks: list[Task], n: int, t: float
) -> dict[str, Any]:
    """Both arms (and the server pair, with ``--server``) for one sampling setting."""
    arms = {
        "ours": ours_arm(student, n, t, args.seed),
        "raw": raw_transformers_arm(
            student.model, student.tokenizer, args.batch_size, n, t, args.seed
        ),
    }
    if args.server:
        remote = LiteLLMModel(
            f"openai/{args.server_model}", api_base=args.server, max_concurrency=args.batch_size
        )
        arms["server_ours"] = ours_arm(remote, n, t, args.seed)
        arms["server_raw"] = raw_server_arm(
            args.server, args.server_model, args.batch_size, n, t, args.seed
        )
    label = "greedy" if t == 0 else f"sampling k={n} t={t}"
    measured = alternate(label, arms, tasks, args.repeats, args.warmup)
    per_s = measured["per_s"]
    entry: dict[str, Any] = {
        "samples": n,
        "temperature": t,
        "ours_tokens_per_s": round(per_s["ours"], 2),
        "raw_tokens_per_s": round(per_s["raw"], 2),
        "ratio": round(paired_ratio(measured["runs"], "ours", "raw"), 3),
        "runs": measured["runs"],
    }
    if t == 0:
        texts = measured["texts"]
        entry["agreement"] = round(agreement(texts["ours"], texts["raw"], tasks), 3)
    if args.server:
        entry["server_ours_tokens_per_s"] = round(per_s["server_ours"], 2)
        entry["server_raw_tokens_per_s"] = round(per_s["server_raw"], 2)
        entry["server_ratio"] = round(
            paired_ratio(measured["runs"], "server_ours", "server_raw"), 3
        )
    return entry


def server_status(args: argparse.Namespace, installed: dict[str, bool]) -> Any:
    if args.server:
        return {"url": args.server, "model": args.server_model}
    if not any(installed.values()):
        return "not available (no --server; llama.cpp and vLLM not installed here)"
    return "not available (no --server given)"


def report(record: dict[str, Any], results: dict[str, Any]) -> None:
    """Print the setting, each arm's tokens/s, and last the ratios."""
    installed, server = record["installed"], record["server"]
    print(
        f"{record['tasks']} held-out prompts, batch {record['batch_size']}, {record['device']} "
        f"{record['dtype']}, {record['cpus']} cpus ({record['torch_threads']} torch threads, "
        f"load {record['load_avg']}), median of {record['repeats']} alternated runs"
    )
    print(f"llama.cpp: {_have(installed['llama_cpp'])}, vLLM: {_have(installed['vllm'])}")
    print(f"server arm: {server if isinstance(server, str) else server['url']}")
    for name, entry in results.items():
        line = (
            f"{name:9s} ours {entry['ours_tokens_per_s']:7.1f} tok/s   "
            f"raw generate {entry['raw_tokens_per_s']:7.1f} tok/s"
        )
        if "agreement" in entry:
            line += f"   same text {entry['agreement']:.0%}"
        print(line)
        if "server_ratio" in entry:
            print(
                f"{'':9s} server: LiteLLMModel {entry['server_ours_tokens_per_s']:7.1f} tok/s   "
                f"openai client {entry['server_raw_tokens_per_s']:7.1f} tok/s"
            )
    for name, entry in results.items():
        verdict = "ok" if entry["ratio"] >= TARGET else f"BELOW the {TARGET} target"
        print(f"ratio {name} (ours / raw generate): {entry['ratio']:.2f}x ({verdict})")
        if "server_ratio" in entry:
            print(f"ratio {name} server (LiteLLMModel / openai): {entry['server_ratio']:.2f}x")


def _have(installed: bool) -> str:
    return "installed" if installed else "not available"


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)  # 1 is far faster on a machine others keep busy
    tasks = [
        task
        for suite in SUITES
        for task in builtin_tasks(suite, split="heldout", n=args.per_suite, seed=args.seed)
    ]
    student = TransformersModel.load(
        args.model, dtype=args.dtype, batch_size=args.batch_size, seed=args.seed
    )
    results = {"greedy": measure_mode(args, student, tasks, 1, 0.0)}
    if not args.no_sampling:
        results["sampling"] = measure_mode(args, student, tasks, args.samples, args.temperature)

    installed = other_backends()
    record = {
        **machine(),
        "torch_threads": torch.get_num_threads(),
        "load_avg": round(os.getloadavg()[0], 2),
        "model": args.model,
        "device": str(student.device),
        "dtype": str(student.model.dtype).removeprefix("torch."),
        "compact": student.compact,
        "tasks": len(tasks),
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "installed": installed,
        "server": server_status(args, installed),
        **results,
    }
    append(RESULTS, record)
    report(record, results)


if __name__ == "__main__":
    main()

"""The calls programs make; the CLI is a thin shell over these.

from selfimprove import Config
from selfimprove.api import run_baseline, verify_solutions

report = run_baseline(Config())          # the embedded student on the built-in suites
print(report.eval.summary())

rounds = run_loop(config)                # gated improvement rounds; run_loop(config, resume=True)
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from selfimprove.config import Config, StoreConfig
from selfimprove.eval.evaluate import EvalReport, evaluate
from selfimprove.eval.report import RoundRecord, read_report
from selfimprove.files import write_text_atomic
from selfimprove.memory import open_store, open_workflows
from selfimprove.models import load_model
from selfimprove.models.base import ChatModel
from selfimprove.progress import spinner
from selfimprove.sandbox import SandboxPool
from selfimprove.tasks import Grader, load_task_set
from selfimprove.tasks.loaders import TaskFileError, load_solutions, load_tasks
from selfimprove.types import Example, Task, Verdict


class BaselineReport(BaseModel):
    """What ``run_baseline`` measured and stored."""

    eval: EvalReport
    stored: int
    store_total: int
    load_s: float
    report_path: Path


def store_config(config: Config) -> StoreConfig:
    """The run's store: ``store.path`` when set explicitly, else ``<loop.out_dir>/store``.

    So two runs with different output folders never share (and train on) each
    other's examples unless the configuration says so.
    """
    if config.store.backend != "chroma" or "path" in config.store.model_fields_set:
        return config.store
    return config.store.model_copy(update={"path": Path(config.loop.out_dir) / "store"})


def attempt_examples(report: EvalReport, tasks: Sequence[Task], *, round: int) -> list[Example]:
    """Every attempt of an evaluation as a stored ``attempt`` example with lineage."""
    by_id = {t.id: t for t in tasks}
    examples = []
    for result in report.results:
        task = by_id[result.task_id]
        for attempt in result.attempts:
            examples.append(
                Example(
                    kind="attempt",
                    prompt=task.prompt,
                    completion=attempt.completion,
                    task_id=task.id,
                    round=round,
                    agent="student",
                    model=report.model,
                    passed=attempt.verdict.passed,
                    reason=attempt.verdict.reason[:500],
                    metadata={
                        "suite": task.suite,
                        "split": task.split,
                        "difficulty": task.difficulty,
                    },
                )
            )
    return examples


def run_baseline(config: Config, *, show_progress: bool = True) -> BaselineReport:
    """Evaluate the configured student on the held-out tasks and store its attempts.

    Writes ``<loop.out_dir>/baseline.json`` and adds every attempt to the example
    store (idempotently: running it twice stores nothing new).
    """
    task_set = load_task_set(config.tasks)
    start = time.perf_counter()
    with spinner(f"loading student {config.student.model}", enabled=show_progress):
        model = load_model(config.student)
    load_s = time.perf_counter() - start
    with SandboxPool(config.sandbox) as sandbox:
        report = evaluate(
            model,
            task_set.heldout,
            Grader(sandbox),
            seed=config.student.seed,
            show_progress=show_progress,
        )
    store = open_store(store_config(config))
    stored = store.add(attempt_examples(report, task_set.heldout, round=0))
    path = Path(config.loop.out_dir) / "baseline.json"
    payload = {
        "model": report.model,
        "load_s": round(load_s, 2),
        "generate_s": round(report.generate_s, 2),
        "verify_s": round(report.verify_s, 2),
        "completion_tokens": report.completion_tokens,
        "heldout_pass_at_1": report.pass_at_1,
        "suites": {name: s.model_dump() for name, s in report.suites.items()},
    }
    write_text_atomic(path, json.dumps(payload, indent=2) + "\n")
    return BaselineReport(
        eval=report, stored=stored, store_total=store.count(), load_s=load_s, report_path=path
    )


def demo_config(rounds: int = 2, out_dir: str | Path = "runs/demo") -> Config:
    """What ``selfimprove demo`` runs: the embedded student on the built-in suites.

    The defaults, sized to finish in under 20 minutes on 2 CPU cores: 50 held-out
    tasks per suite; each round samples 4 answers for 120 training tasks, with
    self-debugging and error injection on, then 30 LoRA SFT steps on the verified
    answers (and self-debug fixes). DPO on the pairs (``training.method: sft_dpo``)
    is left off here: on CPU a DPO step costs about 3.7 SFT steps (20 s vs 5.4 s
    measured), and at equal training time more SFT helped more (bench/bench_loop.py).
    """
    config = Config()
    config.tasks.heldout_per_suite = 50
    config.loop.rounds = rounds
    config.loop.tasks_per_round = 120
    config.loop.out_dir = Path(out_dir)
    config.training.method = "sft"
    config.training.max_steps = 30
    return config


class RunStateError(RuntimeError):
    """A run folder is in a state the requested action cannot start from."""


def run_loop(
    config: Config,
    *,
    resume: bool = False,
    show_progress: bool = True,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
) -> list[RoundRecord]:
    """Run the gated improvement loop; return the report's rounds (round 0 is the baseline).

    State is checkpointed in ``<loop.out_dir>/checkpoints.sqlite`` after every step;
    ``resume=True`` continues an interrupted run where it stopped.

    Raises:
        RunStateError: a run already exists in ``out_dir`` (and ``resume`` is False),
            or there is nothing to resume.
    """
    from langgraph.checkpoint.sqlite import SqliteSaver

    from selfimprove.graphs.collect import CollectSettings, make_collector
    from selfimprove.graphs.round import RoundDeps, build_round_graph, initial_state
    from selfimprove.models.student import resolve_model_path
    from selfimprove.trainers import train_round

    if config.loop.require_approval:
        raise RunStateError(
            "loop.require_approval: true needs the operator console's approval step, which is "
            "not built yet; set it to false (the gate then decides on its own)"
        )
    if config.student.backend != "transformers":
        raise RunStateError(
            f"the loop trains the student, so student.backend must be 'transformers', "
            f"got {config.student.backend!r}; serve the promoted model through litellm instead"
        )
    out = Path(config.loop.out_dir)
    db = out / "checkpoints.sqlite"
    if db.exists() and not resume:
        raise RunStateError(
            f"a run already exists in {str(out)!r}; pass --resume or pick another --out"
        )
    if resume and not db.exists():
        raise RunStateError(f"nothing to resume in {str(out)!r}: no checkpoints.sqlite there")
    out.mkdir(parents=True, exist_ok=True)
    task_set = load_task_set(config.tasks)
    store = open_store(store_config(config))
    loop = config.loop
    settings = CollectSettings(
        samples_per_task=loop.samples_per_task,
        temperature=config.student.temperature,
        seed=config.student.seed,
        self_debug=loop.self_debug,
        debug_turns=loop.debug_turns,
        inject_errors=loop.inject_errors,
        retrieve_k=loop.retrieve_k,
        self_edit=loop.self_edit,
        self_review=loop.self_review,
        critic=loop.critic,
        critic_samples=loop.critic_samples,
        workflows=loop.workflows,
        workflow_min_uses=loop.workflow_min_uses,
        show_progress=show_progress,
    )
    teacher = load_model(config.teacher) if config.teacher.model else None
    workflows = open_workflows(store) if loop.workflows else None

    def load(path: str) -> ChatModel:
        return load_model(config.student.model_copy(update={"model": path}))

    conn = sqlite3.connect(db, check_same_thread=False)
    try:
        with SandboxPool(config.sandbox) as sandbox:
            grader = Grader(sandbox)
            deps = RoundDeps(
                config=config,
                task_set=task_set,
                store=store,
                grader=grader,
                load_model=load,
                collect=make_collector(
                    grader, store, settings, teacher=teacher, workflows=workflows
                ),
                train=train_round,
                out_dir=out,
                show_progress=show_progress,
                teacher=teacher,
                workflows=workflows,
                on_event=on_event or (lambda kind, data: None),
            )
            graph = build_round_graph(deps, checkpointer=SqliteSaver(conn))
            thread = {"configurable": {"thread_id": "run"}}
            start = None if resume else initial_state(resolve_model_path(config.student.model))
            graph.invoke(start, thread)
    finally:
        conn.close()
    return read_report(out / "report.json")


class SolutionVerdict(BaseModel):
    task_id: str
    passed: bool
    reason: str


def verify_solutions(
    tasks_path: str | Path, solutions_path: str | Path, *, sandbox: SandboxPool | None = None
) -> list[SolutionVerdict]:
    """Verify a JSONL file of ``{"task_id", "completion"}`` against a task file.

    Raises:
        TaskFileError: either file is malformed, or a solution names an unknown task.
    """
    tasks = {t.id: t for t in load_tasks(tasks_path)}
    rows = load_solutions(solutions_path)
    for line, task_id, _ in rows:
        if task_id not in tasks:
            raise TaskFileError(
                solutions_path, line, f"task_id {task_id!r} is not in {str(tasks_path)!r}"
            )
    ordered = [tasks[task_id] for _, task_id, _ in rows]
    completions = [completion for *_, completion in rows]
    if sandbox is None:
        with SandboxPool() as pool:
            verdicts = Grader(pool).grade(ordered, completions)
    else:
        verdicts = Grader(sandbox).grade(ordered, completions)
    return [_solution_verdict(t.id, v) for t, v in zip(ordered, verdicts, strict=True)]


def _solution_verdict(task_id: str, verdict: Verdict) -> SolutionVerdict:
    return SolutionVerdict(task_id=task_id, passed=verdict.passed, reason=verdict.reason)

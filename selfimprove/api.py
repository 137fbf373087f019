"""The calls programs make; the CLI is a thin shell over these.

    from selfimprove import Config
    from selfimprove.api import run_baseline, verify_solutions

    report = run_baseline(Config())          # the embedded student on the built-in suites
    print(report.eval.summary())
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from selfimprove.config import Config
from selfimprove.eval.evaluate import EvalReport, evaluate
from selfimprove.memory import open_store
from selfimprove.models import load_model
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
            model, task_set.heldout, Grader(sandbox), seed=config.student.seed,
            show_progress=show_progress,
        )
    store = open_store(config.store)
    stored = store.add(attempt_examples(report, task_set.heldout, round=0))
    out_dir = Path(config.loop.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "baseline.json"
    payload = {
        "model": report.model,
        "load_s": round(load_s, 2),
        "generate_s": round(report.generate_s, 2),
        "verify_s": round(report.verify_s, 2),
        "completion_tokens": report.completion_tokens,
        "heldout_pass_at_1": report.pass_at_1,
        "suites": {name: s.model_dump() for name, s in report.suites.items()},
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return BaselineReport(
        eval=report, stored=stored, store_total=store.count(), load_s=load_s, report_path=path
    )


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

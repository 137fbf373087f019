"""The calls programs make; the CLI, the REST API and the console are shells over these.

from selfimprove import Config, api

report = api.run_baseline(Config())     # the embedded student on the built-in suites
rounds = api.run_loop(config)           # gated rounds; run_loop(config, resume=True)
handle = api.start_loop(config)         # the same in a background thread
api.run_round(config)                   # one more round of the run in loop.out_dir

run = api.Run("runs/demo")              # read and steer a run folder, from any process
run.status(); run.rounds(); run.events(after=0); run.failures(1)
run.pause(); run.resume(); run.stop(); run.set_budget(rounds=4); run.approve()

# each agent on its own (typed pydantic in and out)
model = api.load_model(config.student)
attempts = api.generate(model, tasks, n=4)
verdicts = api.verify(tasks, [a.completion.text for a in attempts])
api.critique(model, tasks, answers); api.self_debug(model, grader, tasks, answers, verdicts)
api.inject_errors(task, answer, grader); api.induce_workflows(tasks, answers)
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from selfimprove.agents import critique, induce_workflows, inject_errors, self_debug
from selfimprove.checkpoints import has_checkpoints
from selfimprove.config import Config, StoreConfig
from selfimprove.control import ApprovalDecision, ApprovalRequest, Control
from selfimprove.eval.evaluate import EvalReport, evaluate
from selfimprove.eval.report import RoundRecord, read_report
from selfimprove.events import Event, EventLog
from selfimprove.files import write_text_atomic
from selfimprove.loop import LoopHandle, RunStateError, run_loop, start_loop
from selfimprove.memory import open_store
from selfimprove.models import load_model
from selfimprove.models.base import ChatModel
from selfimprove.progress import spinner
from selfimprove.runs import ExampleView, Run, RunError, RunStatus
from selfimprove.sandbox import SandboxPool
from selfimprove.tasks import Grader, load_task_set
from selfimprove.tasks.loaders import TaskFileError, load_solutions, load_tasks
from selfimprove.types import Attempt, Example, Task, Verdict

__all__ = [
    "ApprovalDecision",
    "ApprovalRequest",
    "BaselineReport",
    "Control",
    "Event",
    "EventLog",
    "ExampleView",
    "LoopHandle",
    "Run",
    "RunError",
    "RunStateError",
    "RunStatus",
    "SolutionVerdict",
    "critique",
    "demo_config",
    "generate",
    "induce_workflows",
    "inject_errors",
    "load_model",
    "read_report",
    "run_baseline",
    "run_loop",
    "run_round",
    "self_debug",
    "start_loop",
    "store_config",
    "verify",
    "verify_solutions",
]


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


def run_round(config: Config, *, show_progress: bool = True) -> RoundRecord:
    """Run one more round of the run in ``loop.out_dir`` (the baseline first if it is new).

    Continues an interrupted round if there is one; returns the new round's record.
    """
    out = Path(config.loop.out_dir)
    resume = has_checkpoints(out)
    done = max(len(read_report(out / "report.json")) - 1, 0) if resume else 0
    config = config.model_copy(deep=True)
    config.loop.rounds = done + 1
    if resume:
        Run(out).control.update(rounds=None)  # a stale budget would override this one
    return run_loop(config, resume=resume, show_progress=show_progress)[-1]


def generate(
    model: ChatModel,
    tasks: Sequence[Task],
    *,
    n: int = 1,
    temperature: float = 0.0,
    seed: int = 0,
) -> list[Attempt]:
    """``n`` answers per task from ``model``, graded in the sandbox: one ``Attempt`` each.

    Uses each task's own prompt format and token budget (as evaluation does).
    """
    with SandboxPool() as pool:
        report = evaluate(
            model,
            list(tasks),
            Grader(pool),
            samples=n,
            temperature=temperature,
            seed=seed,
            show_progress=False,
        )
    return [attempt for result in report.results for attempt in result.attempts]


def verify(tasks: Sequence[Task], completions: Sequence[str]) -> list[Verdict]:
    """Grade one completion per task (code runs in the sandbox, answers are checked)."""
    if len(tasks) != len(completions):
        raise ValueError(f"{len(tasks)} tasks but {len(completions)} completions; give one each")
    with SandboxPool() as pool:
        return Grader(pool).grade(list(tasks), list(completions))


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

"""Held-out evaluation: generate for every task in batches, verify, score per suite.

``evaluate(model, tasks, grader)`` returns an ``EvalReport`` with pass@1 (greedy
by default) and, when ``samples > 1``, pass@k for k in 1, 2, 5, 10 up to the
number of samples, per suite and per difficulty level, plus every attempt with
its verdict so callers can store them.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence

from pydantic import BaseModel, Field

from selfimprove.eval.metrics import mean, pass_at_k
from selfimprove.models.base import ChatModel, ProgressFn, Prompt
from selfimprove.models.bounded import bounded
from selfimprove.progress import progress_bar
from selfimprove.tasks.verifiers import Grader
from selfimprove.types import Attempt, Completion, Task

ANSWER_MAX_TOKENS = 48
CODE_MAX_TOKENS = 160  # the student's passing code answers take <= 30 tokens (measured)
# Short answers end at the first blank line; code ends at its closing fence.
ANSWER_STOP = ("\n\n",)
CODE_STOP = ("\n```",)


def generation_settings(task: Task) -> tuple[int, tuple[str, ...]]:
    """``(max_tokens, stop)`` for a task: its metadata's, else defaults by kind."""
    meta = task.metadata
    if task.kind == "code":
        default_tokens, default_stop = CODE_MAX_TOKENS, CODE_STOP
    else:
        default_tokens, default_stop = ANSWER_MAX_TOKENS, ANSWER_STOP
    max_tokens = int(meta.get("max_tokens", default_tokens))
    stop = tuple(meta.get("stop", default_stop))
    return max_tokens, stop


def generate_for_tasks(
    model: ChatModel,
    tasks: Sequence[Task],
    prompts: Sequence[Prompt] | None = None,
    *,
    n: int = 1,
    temperature: float = 0.0,
    seed: int | None = None,
    progress: ProgressFn | None = None,
) -> list[list[Completion]]:
    """``n`` completions per task, in order, with one ``generate`` call per settings group.

    Tasks are grouped by ``generation_settings`` (code and short answers stop
    differently), so the model still sees whole batches. ``prompts`` replaces the
    tasks' own prompts (e.g. with worked examples or feedback) when given.
    """
    prompts = [t.prompt for t in tasks] if prompts is None else prompts
    groups: dict[tuple[int, tuple[str, ...]], list[int]] = defaultdict(list)
    for i, task in enumerate(tasks):
        groups[generation_settings(task)].append(i)
    rows: list[list[Completion]] = [[] for _ in tasks]
    for (max_tokens, stop), indices in groups.items():
        outputs = model.generate(
            [prompts[i] for i in indices],
            n=n,
            temperature=temperature,
            max_tokens=max_tokens,
            stop=list(stop),
            seed=seed,
            progress=progress,
        )
        for i, row in zip(indices, outputs, strict=True):
            rows[i] = row
    return rows


class TaskResult(BaseModel):
    """All samples of one task with their verdicts."""

    task_id: str
    suite: str
    difficulty: int
    attempts: list[Attempt]

    @property
    def correct(self) -> int:
        return sum(a.verdict.passed for a in self.attempts)


class SuiteScore(BaseModel):
    suite: str
    n: int
    pass_at_1: float
    pass_at_k: dict[int, float] = Field(default_factory=dict)
    by_difficulty: dict[int, float] = Field(default_factory=dict)


class EvalReport(BaseModel):
    """Scores of one model on one set of tasks."""

    model: str
    n_tasks: int
    samples: int
    temperature: float
    pass_at_1: float
    suites: dict[str, SuiteScore]
    results: list[TaskResult] = Field(repr=False)
    generate_s: float
    verify_s: float
    completion_tokens: int

    def summary(self) -> dict[str, float]:
        """``{"overall": pass@1, suite: pass@1, ...}``."""
        return {"overall": self.pass_at_1} | {s: v.pass_at_1 for s, v in self.suites.items()}


def evaluate(
    model: ChatModel,
    tasks: Sequence[Task],
    grader: Grader,
    *,
    samples: int = 1,
    temperature: float = 0.0,
    seed: int = 0,
    show_progress: bool = True,
) -> EvalReport:
    """Generate ``samples`` answers per task, verify them, and score."""
    if not tasks:
        raise ValueError("evaluate() needs at least one task")
    start = time.perf_counter()
    with progress_bar("generating", total=len(tasks), enabled=show_progress) as advance:
        rows = generate_for_tasks(
            bounded(model), tasks, n=samples, temperature=temperature, seed=seed, progress=advance
        )
    texts = [[c.text for c in row] for row in rows]
    tokens = sum(c.tokens for row in rows for c in row)
    generate_s = time.perf_counter() - start
    start = time.perf_counter()
    flat_tasks = [task for task, outs in zip(tasks, texts, strict=True) for _ in outs]
    flat_texts = [text for outs in texts for text in outs]
    with progress_bar("verifying", total=len(flat_texts), enabled=show_progress) as advance:
        verdicts = grader.grade(flat_tasks, flat_texts)
        advance(len(verdicts))
    verify_s = time.perf_counter() - start
    results: list[TaskResult] = []
    cursor = 0
    for task, outs in zip(tasks, texts, strict=True):
        attempts = [
            Attempt(task_id=task.id, completion=text, verdict=verdicts[cursor + j])
            for j, text in enumerate(outs)
        ]
        cursor += len(outs)
        results.append(
            TaskResult(
                task_id=task.id, suite=task.suite, difficulty=task.difficulty, attempts=attempts
            )
        )
    return EvalReport(
        model=model.name,
        n_tasks=len(tasks),
        samples=samples,
        temperature=temperature,
        pass_at_1=mean([r.correct / len(r.attempts) for r in results]),
        suites=_score_suites(results, samples),
        results=results,
        generate_s=generate_s,
        verify_s=verify_s,
        completion_tokens=tokens,
    )


def _score_suites(results: list[TaskResult], samples: int) -> dict[str, SuiteScore]:
    by_suite: dict[str, list[TaskResult]] = defaultdict(list)
    for result in results:
        by_suite[result.suite].append(result)
    ks = [k for k in (1, 2, 5, 10) if k <= samples]
    scores = {}
    for suite, rows in sorted(by_suite.items()):
        levels: dict[int, list[float]] = defaultdict(list)
        for r in rows:
            levels[r.difficulty].append(r.correct / len(r.attempts))
        scores[suite] = SuiteScore(
            suite=suite,
            n=len(rows),
            pass_at_1=mean([r.correct / len(r.attempts) for r in rows]),
            pass_at_k={
                k: mean([pass_at_k(len(r.attempts), r.correct, k) for r in rows]) for k in ks
            },
            by_difficulty={lvl: mean(v) for lvl, v in sorted(levels.items())},
        )
    return scores

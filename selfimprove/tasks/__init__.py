"""Tasks and their verifiers: built-in suites, JSONL loaders, pure verifier functions.

Built-in suites (one per file, procedurally generated with fixed splits):
``arithmetic``, ``compare``, ``strings``, ``code``. Get tasks with
``builtin_tasks("arithmetic", split="heldout", n=100)`` or, for a run
configuration, ``load_task_set(config.tasks)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from selfimprove.config import TasksConfig
from selfimprove.tasks import arithmetic, code, compare, strings
from selfimprove.tasks.loaders import TaskFileError, load_solutions, load_tasks
from selfimprove.tasks.suite import TaskMaker, generate, split_of
from selfimprove.tasks.verifiers import (
    Grader,
    Verifier,
    build_program,
    check_answer,
    check_choice,
    check_exact,
    check_number,
)
from selfimprove.types import Split, Task

SUITES: dict[str, TaskMaker] = {
    "arithmetic": arithmetic.make,
    "compare": compare.make,
    "strings": strings.make,
    "code": code.make,
}


def builtin_tasks(suite: str, *, split: Split, n: int, seed: int = 0) -> list[Task]:
    """``n`` tasks of a built-in suite; held-out tasks are the same whatever ``seed``."""
    try:
        make = SUITES[suite]
    except KeyError:
        raise ValueError(
            f"unknown task suite {suite!r}; built-in suites: {sorted(SUITES)}"
        ) from None
    return generate(suite, make, split=split, n=n, seed=seed)


@dataclass(frozen=True)
class TaskSet:
    """Train, held-out and guard tasks of a run.

    The gate scores held-out tasks and rejects a candidate that regresses on the
    guard tasks; training data is checked against both for contamination.
    """

    train: list[Task]
    heldout: list[Task]
    guard: list[Task] = field(default_factory=list)

    @property
    def suites(self) -> list[str]:
        return sorted({t.suite for t in self.heldout} | {t.suite for t in self.train})


def load_task_set(config: TasksConfig) -> TaskSet:
    """The tasks a configuration names: built-in suites plus JSONL files.

    Built-in guard tasks are the held-out tasks that follow the scored ones, so the
    two sets never overlap; every task of a guard file is a guard task.
    """
    train: list[Task] = []
    heldout: list[Task] = []
    guard: list[Task] = []
    scored, guarded = config.heldout_per_suite, config.guard_per_suite
    for suite in config.suites:
        train += builtin_tasks(suite, split="train", n=config.train_per_suite, seed=config.seed)
        held = builtin_tasks(suite, split="heldout", n=scored + guarded)
        heldout += held[:scored]
        guard += held[scored:]
    for path in config.files:
        for task in load_tasks(path):
            (heldout if task.split == "heldout" else train).append(task)
    for path in config.guard_files:
        guard += load_tasks(path)
    return TaskSet(train=train, heldout=heldout, guard=guard)


__all__ = [
    "SUITES",
    "Grader",
    "TaskFileError",
    "TaskSet",
    "Verifier",
    "build_program",
    "builtin_tasks",
    "check_answer",
    "check_choice",
    "check_exact",
    "check_number",
    "load_solutions",
    "load_task_set",
    "load_tasks",
    "split_of",
]

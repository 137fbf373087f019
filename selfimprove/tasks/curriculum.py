"""A difficulty-aware curriculum: train on the tasks the student sometimes solves.

A task the student always solves teaches nothing new, and one it never solves
gives no correct sample to learn from (augmentation makes easier neighbours of
those instead, see ``agents.augment``). ``task_records`` counts the student's
stored attempts per task; ``select_tasks`` skips both kinds once a task has been
tried ``min_attempts`` times, keeps unseen and mixed tasks, and draws a round's
tasks from them.

    records = task_records(store, [t.id for t in train], before_round=round)
    chosen, counts = select_tasks(train, records, k=64, rng=random.Random(round))
    counts  # {"kept": 80, "unseen": 30, "skipped_solved": 12, "skipped_unsolved": 8, ...}

``TaskHistory`` gives the same records to a loop that asks once per round,
reading only the rounds it has not read yet, so a round's task choice costs that
round's attempts rather than every attempt ever stored.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field

from selfimprove.memory.base import ExampleStore
from selfimprove.types import Example, Task

STUDENT_ATTEMPTS = {"kind": "attempt", "agent": "student"}  # what task records count


class TaskRecord(BaseModel):
    """How the student did on one task: sampled attempts, how many passed, in which rounds."""

    attempts: int = 0
    passed: int = 0
    rounds: list[int] = Field(default_factory=list)  # sorted, distinct

    @property
    def rate(self) -> float | None:
        """The share of attempts that passed; None before any attempt."""
        return self.passed / self.attempts if self.attempts else None


def task_records(
    store: ExampleStore,
    task_ids: Collection[str] | None = None,
    *,
    before_round: int | None = None,
) -> dict[str, TaskRecord]:
    """Per-task records of the student's sampled attempts in ``store``.

    Counts examples of kind ``"attempt"`` by agent ``"student"`` (self-debug turns,
    agent ``"self_debug"``, are not samples of the student's own skill). Only tasks
    with at least one attempt get a record. The same answer sampled twice for a
    task in one round is one stored attempt (content ids); its ``metadata["count"]``,
    when set, says how many samples it stands for.

    Args:
        store: the example store.
        task_ids: only these tasks (default: every task with attempts).
        before_round: only attempts of rounds before this one.
    """
    where: dict[str, Any] = dict(STUDENT_ATTEMPTS)
    if before_round is not None:
        where["round"] = {"$lt": before_round}
    if task_ids is not None:
        ids = sorted(set(task_ids))
        if not ids:
            return {}
        where["task_id"] = {"$in": ids}
    records: dict[str, TaskRecord] = {}
    _count_attempts(records, store.find(where))
    return records


def _count_attempts(records: dict[str, TaskRecord], attempts: Iterable[Example]) -> None:
    """Add the student's sampled ``attempts`` to ``records`` (see ``task_records``)."""
    for example in attempts:
        if example.task_id is None:
            continue
        samples = _count(example.metadata.get("count", 1))
        record = records.setdefault(example.task_id, TaskRecord())
        record.attempts += samples
        record.passed += samples if example.passed is True else 0
        if example.round not in record.rounds:
            record.rounds = sorted([*record.rounds, example.round])


class TaskHistory:
    """``task_records`` for a loop that asks once per round, read incrementally.

    The first call reads every earlier attempt; each later one reads only the
    rounds added since, one ``{"round": r}`` slice each, which stores answer at
    the cost of that round's examples. Rounds once read are taken as final: the
    loop adds attempts only to the round it runs, and asking about an earlier
    round than before reads everything again.

    Args:
        store: the example store.
    """

    def __init__(self, store: ExampleStore) -> None:
        self.store = store
        self._before: int | None = None  # the rounds below it are counted in _records
        self._records: dict[str, TaskRecord] = {}

    def records(
        self, task_ids: Collection[str] | None = None, *, before_round: int
    ) -> dict[str, TaskRecord]:
        """``task_records(store, task_ids, before_round=before_round)``, as fresh copies."""
        if self._before is None or before_round < self._before:
            self._records = task_records(self.store, before_round=before_round)
        else:
            for r in range(self._before, before_round):
                _count_attempts(self._records, self.store.find({**STUDENT_ATTEMPTS, "round": r}))
        self._before = before_round
        wanted = None if task_ids is None else set(task_ids)
        return {
            i: record.model_copy(deep=True)
            for i, record in self._records.items()
            if wanted is None or i in wanted
        }


def select_tasks(
    tasks: Sequence[Task],
    records: Mapping[str, TaskRecord],
    k: int | None,
    rng: random.Random,
    *,
    min_attempts: int = 4,
) -> tuple[list[Task], dict[str, int]]:
    """Draw a round's tasks, skipping those the student always or never solves.

    A task with at least ``min_attempts`` attempts is skipped when all of them
    passed (``skipped_solved``) or none did (``skipped_unsolved``); unseen tasks
    and the rest are kept. ``k`` tasks are drawn from the kept ones (``None``:
    all of them); when fewer than ``k`` are kept the round is filled from the
    skipped ones, never-solved before always-solved. Tasks come back in input
    order; the draw is deterministic for a given ``rng`` state.

    Returns:
        The tasks and counts: ``kept`` (incl. ``unseen``), ``skipped_solved``,
        ``skipped_unsolved``, ``filled`` (skipped tasks taken back) and ``selected``.

    Raises:
        ValueError: ``k`` is negative.
    """
    if k is not None and k < 0:
        raise ValueError(f"k must be None or >= 0, got {k!r}")
    kept: list[int] = []
    solved: list[int] = []
    unsolved: list[int] = []
    unseen = 0
    for i, task in enumerate(tasks):
        record = records.get(task.id)
        if record is None or record.attempts == 0:
            unseen += 1
            kept.append(i)
        elif record.attempts >= min_attempts and record.passed == record.attempts:
            solved.append(i)
        elif record.attempts >= min_attempts and record.passed == 0:
            unsolved.append(i)
        else:
            kept.append(i)
    wanted = len(kept) if k is None else k
    chosen = _draw(kept, wanted, rng)
    filled: list[int] = []
    for pool in (unsolved, solved):
        filled += _draw(pool, wanted - len(chosen) - len(filled), rng)
    picked = sorted(chosen + filled)
    counts = {
        "kept": len(kept),
        "unseen": unseen,
        "skipped_solved": len(solved),
        "skipped_unsolved": len(unsolved),
        "filled": len(filled),
        "selected": len(picked),
    }
    return [tasks[i] for i in picked], counts


def _draw(pool: list[int], k: int, rng: random.Random) -> list[int]:
    """``k`` of ``pool`` at random (all of it when it is no bigger)."""
    if k <= 0:
        return []
    return list(pool) if len(pool) <= k else rng.sample(pool, k)


def _count(value: object) -> int:
    """How many samples an attempt stands for: its ``count`` metadata, at least 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 1
    return max(int(value), 1)

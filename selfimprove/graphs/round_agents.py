"""The round graph's optional agent steps: task choice, augmentation, curation, offline workflows.

- ``choose_tasks``: the round's training tasks. The new tasks written from the last
  round's failures come first (up to ``loop.augment_max``, and at most half of
  ``loop.tasks_per_round``, so the round keeps a share of the original tasks), then tasks drawn from the
  pool: at random, or with ``loop.curriculum`` skipping tasks the student always or
  never solved in earlier rounds. The number of tasks per round stays the same, so
  switching an agent on does not buy extra compute.
  Tasks an operator queued (``Run.add_tasks``, ``added_tasks.jsonl``) join the pool;
  those the student never tried go first, in the same share as augmented ones.
- ``augment``: LLM2LLM / S3: new tasks near the ones the student failed this round
  (teacher-written, else programmatic variants of built-in tasks), each verified
  solvable and checked against the held-out and guard tasks; saved as
  ``round-N/augmented.jsonl`` so a resumed round reuses them.
- ``curate``: CLEAR-style confidence filtering and near-duplicate removal of a round's
  training examples.
- ``offline_workflows``: workflows induced from the training tasks' references.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfimprove.agents.augment import augment_failures
from selfimprove.agents.workflows import induce_workflows
from selfimprove.files import write_text_atomic
from selfimprove.memory.curate import curate
from selfimprove.memory.decontaminate import check_tasks_decontaminated
from selfimprove.memory.embeddings import make_embeddings
from selfimprove.runs import added_tasks
from selfimprove.tasks.curriculum import TaskHistory, select_tasks
from selfimprove.types import Example, Task

if TYPE_CHECKING:
    from selfimprove.graphs.round import RoundDeps

AUGMENTED = "augmented.jsonl"


def augmented_tasks(out_dir: Path, before_round: int) -> dict[int, list[Task]]:
    """The tasks augmentation wrote in each round before ``before_round``."""
    found = {}
    for r in range(1, before_round):
        path = out_dir / f"round-{r}" / AUGMENTED
        if path.exists():
            lines = path.read_text(encoding="utf-8").splitlines()
            found[r] = [Task.model_validate_json(line) for line in lines if line.strip()]
    return found


def task_pool(deps: RoundDeps, earlier: dict[int, list[Task]]) -> dict[str, Task]:
    """The run's training tasks by id: the configured ones, those augmentation wrote,
    then those an operator added."""
    pool = {t.id: t for t in deps.task_set.train}
    for tasks in earlier.values():
        pool |= {t.id: t for t in tasks}
    pool |= {t.id: t for t in added_tasks(deps.out_dir) if t.id not in pool}
    return pool


def _untried(deps: RoundDeps, round: int) -> list[Task]:
    """Operator-added tasks the student has not attempted before ``round``."""
    added = added_tasks(deps.out_dir)
    if not added:
        return []
    where = {"$and": [{"kind": "attempt"}, {"task_id": {"$in": [t.id for t in added]}}]}
    tried = {e.task_id for e in deps.store.find(where) if e.round < round}
    return [t for t in added if t.id not in tried]


def choose_tasks(
    deps: RoundDeps, round: int, history: TaskHistory | None = None
) -> tuple[list[Task], dict[str, int]]:
    """The training tasks of ``round`` and what the choice skipped (see the module docstring).

    ``history``: the curriculum's records kept across rounds (the round graph keeps
    one), so that only the last round's attempts are read; None reads them all.
    """
    history = history if history is not None else TaskHistory(deps.store)
    loop, rng = deps.config.loop, random.Random(f"{deps.config.tasks.seed}:{round}")
    earlier = augmented_tasks(deps.out_dir, round)
    k = loop.tasks_per_round
    room = loop.augment_max if k is None else min(loop.augment_max, k // 2)
    queued = _untried(deps, round)[:room]
    fresh = queued + earlier.get(round - 1, [])[: room - len(queued)]
    fresh_ids = {t.id for t in fresh}
    pool = [t for t in task_pool(deps, earlier).values() if t.id not in fresh_ids]
    wanted = None if k is None else k - len(fresh)
    counts: dict[str, int] = {"tasks/augmented": len(fresh) - len(queued)} if loop.augment else {}
    if queued:
        counts["tasks/added"] = len(queued)
    if loop.curriculum:
        records = history.records({t.id for t in pool}, before_round=round)
        drawn, skipped = select_tasks(
            pool, records, wanted, rng, min_attempts=loop.curriculum_min_attempts
        )
        counts |= {f"curriculum/{name}": n for name, n in skipped.items()}
    elif wanted is None or wanted >= len(pool):
        drawn = pool
    else:
        drawn = rng.sample(pool, wanted)
    return fresh + drawn, counts


def failed_tasks(deps: RoundDeps, round: int, pool: dict[str, Task]) -> list[Task]:
    """The tasks of ``pool`` sampled in ``round`` none of whose samples passed."""
    where = {"$and": [{"kind": "attempt"}, {"round": round}, {"agent": "student"}]}
    solved, tried = set(), []
    for attempt in deps.store.find(where):
        tried.append(attempt.task_id)
        if attempt.passed:
            solved.add(attempt.task_id)
    return [pool[i] for i in dict.fromkeys(tried) if i in pool and i not in solved]


def augment(deps: RoundDeps, round: int) -> dict[str, int]:
    """Write new verified tasks near this round's failures; return the counts."""
    path = deps.out_dir / f"round-{round}" / AUGMENTED
    pool = task_pool(deps, augmented_tasks(deps.out_dir, round))
    failed = failed_tasks(deps, round, pool)
    if path.exists():  # written before a crash: never write twice
        lines = path.read_text(encoding="utf-8").splitlines()
        return {"augment/failed": len(failed), "augment/tasks": len([x for x in lines if x])}
    evaluation = deps.task_set.heldout + deps.task_set.guard
    known = {t.prompt for t in pool.values()}
    loop = deps.config.loop
    result = augment_failures(
        failed[: loop.augment_max],
        deps.grader,
        per_task=loop.augment_per_failure,
        seed=deps.config.tasks.seed + round,
        teacher=deps.teacher,
        heldout=evaluation,
        known=known,
    )
    new = result.tasks[: loop.augment_max]
    check_tasks_decontaminated(new, evaluation)  # the loop's gate, for generated tasks too
    write_text_atomic(path, "".join(t.model_dump_json() + "\n" for t in new))
    counts = {"augment/failed": len(failed), "augment/proposed": result.proposed}
    counts |= {f"augment/rejected/{why}": n for why, n in result.rejected.items()}
    return counts | {"augment/tasks": len(new)}


def curate_round(
    deps: RoundDeps, round: int, positives: list[Example], pairs: list[Example]
) -> tuple[list[Example], list[Example], dict[str, int]]:
    """The round's training examples after confidence filtering and near-duplicate removal."""
    loop = deps.config.loop
    attempts = deps.store.find({"$and": [{"kind": "attempt"}, {"round": round}]})
    tasks = task_pool(deps, augmented_tasks(deps.out_dir, round))
    embeddings: Any = None
    if loop.curate_near_duplicate is not None:  # the store's own, else one of the same kind
        embeddings = getattr(deps.store, "embeddings", None)
        embeddings = embeddings or make_embeddings(deps.config.store.embedding)
    kept_positives, kept_pairs, report = curate(
        positives,
        pairs,
        attempts,
        tasks,
        min_confidence=loop.curate_min_confidence,
        near_duplicate=loop.curate_near_duplicate,
        embeddings=embeddings,
        max_per_task=loop.curate_max_per_task,
    )
    return kept_positives, kept_pairs, report.counts()


def offline_workflows(deps: RoundDeps) -> int:
    """Induce workflows from the training tasks' references (AWM offline); return how many new."""
    if deps.workflows is None:
        return 0
    usable = [t for t in deps.task_set.train if t.reference or t.answer]
    answers = [t.reference or t.answer or "" for t in usable]
    workflows = induce_workflows(usable, answers, teacher=deps.teacher, origin="offline")
    return deps.workflows.add(workflows)

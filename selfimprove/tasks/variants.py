"""Programmatic variants of built-in tasks: new training tasks near one the student failed.

A variant is drawn from the same suite maker at the same level, with the same
template (code) or operation (arithmetic, compare and strings: one per level),
and new constants and inputs. Every variant is a *train* identity by the fixed
hash split (``suite.split_of``), so augmenting never produces a held-out task.

    from selfimprove.tasks.variants import can_vary, variants
    if can_vary(task):
        new = variants(task, 3, random.Random(0), exclude={split_key(t) for t in train})

Variants are ``split="train"`` with id ``"aug-<hash>"`` and metadata naming where
they came from (``"augmented_from"``: the task's id, ``"origin": "variant"``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection

from selfimprove.tasks import arithmetic, code, compare, strings
from selfimprove.tasks.suite import LEVELS, split_key, split_of
from selfimprove.types import Task, content_id

TRIES_PER_VARIANT = 30  # small constant spaces (power_sum has 3) run out quickly: stop, don't spin
_TEMPLATES = {t.name: t.level for t in code.TEMPLATES}
_ANSWER_MAKERS: dict[str, Callable[[int, random.Random], Task]] = {
    "arithmetic": arithmetic.make,
    "compare": compare.make,
    "strings": strings.make,
}


def can_vary(task: Task) -> bool:
    """Whether ``task`` is a built-in suite task (or a variant of one) that ``variants`` can vary."""
    if task.difficulty not in LEVELS:
        return False
    if task.suite == "code":
        template = task.metadata.get("template")
        return task.kind == "code" and _TEMPLATES.get(str(template)) == task.difficulty
    return task.suite in _ANSWER_MAKERS and task.kind == "answer"


def variants(
    task: Task, n: int, rng: random.Random, *, exclude: Collection[str] = ()
) -> list[Task]:
    """Up to ``n`` new train tasks like ``task`` (same suite, level and template or operation).

    Each has a split key (see ``suite.split_key``) that differs from ``task``'s,
    from every other variant and from those in ``exclude``, and that belongs to
    the train split. Fewer than ``n`` come back when the template has few
    constants left to vary. Deterministic for a given ``rng`` state.

    Raises:
        ValueError: ``task`` is not a built-in task (see ``can_vary``).
    """
    if not can_vary(task):
        raise ValueError(
            f"cannot make variants of task {task.id!r} (suite {task.suite!r}): only built-in "
            f"suites {sorted([*_ANSWER_MAKERS, 'code'])} are varied; use a teacher for others"
        )
    make = _maker(task)
    taken = {split_key(task), *exclude}
    out: list[Task] = []
    for _ in range(max(n, 0) * TRIES_PER_VARIANT):
        if len(out) >= n:
            break
        fresh = make(rng)
        key = split_key(fresh)
        if key in taken or split_of(key) != "train":
            continue
        taken.add(key)
        out.append(
            fresh.model_copy(
                update={
                    "id": f"aug-{content_id(task.suite, key, fresh.prompt)[:16]}",
                    "suite": task.suite,
                    "split": "train",
                    "metadata": fresh.metadata | {"augmented_from": task.id, "origin": "variant"},
                }
            )
        )
    return out


def _maker(task: Task) -> Callable[[random.Random], Task]:
    if task.suite == "code":
        name = str(task.metadata["template"])
        return lambda rng: code.make_template(name, rng)
    make, level = _ANSWER_MAKERS[task.suite], task.difficulty
    return lambda rng: make(level, rng)

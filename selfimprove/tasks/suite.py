"""What every built-in task suite shares: a stable train/held-out split.

A suite is a function ``make(difficulty, rng) -> Task`` (id, split and suite are
filled in here). ``generate`` draws from it level by level and assigns each
distinct task to a split by a hash of its identity: ``metadata["split_key"]``
when the suite sets one (a code task's template and constants, so two prompts
for the same function with different examples land in the same split), else
the prompt. So

- train and held-out never share a task, whatever seeds or sizes are used;
- the held-out set is fixed: it is always drawn with the same seed, so every
  round and every run is evaluated on the same items;
- training data can be drawn afresh with another seed.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

from selfimprove.types import Split, Task

HELDOUT_SEED = 20261121
HELDOUT_SHARE = 4  # one prompt in four belongs to held-out
LEVELS = (1, 2, 3, 4, 5)

TaskMaker = Callable[[int, random.Random], Task]


def split_key(task: Task) -> str:
    """What identifies a task for splitting and de-duplication."""
    return str(task.metadata.get("split_key", task.prompt))


def split_of(key: str) -> Split:
    """The split a task identity (see ``split_key``) belongs to, fixed by its hash."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return "heldout" if digest[0] % HELDOUT_SHARE == 0 else "train"


def generate(
    suite: str,
    make: TaskMaker,
    *,
    split: Split,
    n: int,
    seed: int = 0,
    levels: tuple[int, ...] = LEVELS,
    max_tries_per_item: int = 200,
) -> list[Task]:
    """``n`` distinct tasks (by ``split_key``) of ``suite`` in ``split``, spread over ``levels``.

    Held-out tasks ignore ``seed`` (they are the same for everyone). Raises
    ValueError when a level cannot supply enough distinct prompts.
    """
    rng = random.Random(f"{suite}:{HELDOUT_SEED if split == 'heldout' else seed}:{split}")
    seen: set[str] = set()
    tasks: list[Task] = []
    for i in range(n):
        level = levels[i % len(levels)]
        for _ in range(max_tries_per_item):
            task = make(level, rng)
            key = split_key(task)
            if key not in seen and split_of(key) == split:
                break
        else:
            raise ValueError(
                f"suite {suite!r} level {level} ran out of distinct {split} tasks after "
                f"{len(tasks)} tasks; ask for fewer than {n}"
            )
        seen.add(key)
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:10]
        tasks.append(
            task.model_copy(
                update={"id": f"{suite}/{level}/{digest}", "suite": suite, "split": split}
            )
        )
    return tasks

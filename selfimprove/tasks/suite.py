"""What every built-in task suite shares: a stable train/held-out split.

A suite is a function ``make(difficulty, rng) -> Task`` (id, split and suite are
filled in here). ``generate`` draws from it level by level and assigns each
distinct prompt to a split by a hash of the prompt, so

- train and held-out never share a prompt, whatever seeds or sizes are used;
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


def split_of(prompt: str) -> Split:
    """The split a prompt belongs to, fixed by its hash."""
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
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
    """``n`` distinct tasks of ``suite`` in ``split``, spread evenly over ``levels``.

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
            if task.prompt not in seen and split_of(task.prompt) == split:
                break
        else:
            raise ValueError(
                f"suite {suite!r} level {level} ran out of distinct {split} prompts after "
                f"{len(tasks)} tasks; ask for fewer than {n}"
            )
        seen.add(task.prompt)
        digest = hashlib.sha256(task.prompt.encode("utf-8")).hexdigest()[:10]
        tasks.append(
            task.model_copy(
                update={"id": f"{suite}/{level}/{digest}", "suite": suite, "split": split}
            )
        )
    return tasks

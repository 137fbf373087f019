"""Built-in suite ``compare``: pick the larger (or largest) of a few numbers.

Graded by ``check_choice``: a reply that names both numbers without saying
which is larger fails ("64 is 95." is not an answer). Levels: 1 one-digit,
2 two-digit, 3 two-digit within 9 of each other, 4 three-digit within 20,
5 the largest of three two-digit numbers.
"""

from __future__ import annotations

import random

from selfimprove.types import Task

SUFFIX = "Answer with just the number."


def make(level: int, rng: random.Random) -> Task:
    """One comparison task of the given level (1-5)."""
    if level == 1:
        numbers = rng.sample(range(0, 10), 2)
    elif level == 2:
        numbers = rng.sample(range(10, 100), 2)
    elif level == 3:
        a = rng.randint(10, 90)
        numbers = [a, a + rng.randint(1, 9)]
        rng.shuffle(numbers)
    elif level == 4:
        a = rng.randint(100, 979)
        numbers = [a, a + rng.randint(1, 20)]
        rng.shuffle(numbers)
    elif level == 5:
        numbers = rng.sample(range(10, 100), 3)
    else:
        raise ValueError(f"compare has levels 1-5, got {level!r}")
    shown = [str(n) for n in numbers]
    if len(shown) == 2:
        prompt = f"Which number is larger: {shown[0]} or {shown[1]}? {SUFFIX}"
    else:
        prompt = f"Which number is the largest: {shown[0]}, {shown[1]} or {shown[2]}? {SUFFIX}"
    return Task(
        id="pending",
        prompt=prompt,
        answer=str(max(numbers)),
        difficulty=level,
        metadata={"match": "choice", "choices": shown},
    )

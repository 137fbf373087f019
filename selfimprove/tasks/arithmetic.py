"""Built-in suite ``arithmetic``: integer arithmetic with one numeric answer.

Levels: 1 one-digit addition, 2 two-digit addition, 3 two-digit subtraction,
4 one-digit by two-digit multiplication, 5 ``a + b - c`` with two-digit numbers.
"""

from __future__ import annotations

import random

from selfimprove.types import Task

SUFFIX = "Answer with just the number."


def make(level: int, rng: random.Random) -> Task:
    """One arithmetic task of the given level (1-5)."""
    if level == 1:
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        expr, value = f"{a} + {b}", a + b
    elif level == 2:
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        expr, value = f"{a} + {b}", a + b
    elif level == 3:
        a, b = sorted((rng.randint(10, 99), rng.randint(10, 99)), reverse=True)
        expr, value = f"{a} - {b}", a - b
    elif level == 4:
        a, b = rng.randint(2, 9), rng.randint(10, 99)
        expr, value = f"{a} * {b}", a * b
    elif level == 5:
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        c = rng.randint(10, a + b)
        expr, value = f"{a} + {b} - {c}", a + b - c
    else:
        raise ValueError(f"arithmetic has levels 1-5, got {level!r}")
    return Task(
        id="pending",
        prompt=f"What is {expr}? {SUFFIX}",
        answer=str(value),
        difficulty=level,
        metadata={"match": "number", "expression": expr},
    )

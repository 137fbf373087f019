"""Built-in suite ``strings``: small manipulations of one English word.

Levels: 1 uppercase the word, 2 its first letter, 3 its last letter, 4 its
number of letters, 5 the word spelled backwards. Words come from the
``words.txt`` list shipped beside this file.
"""

from __future__ import annotations

import functools
import random
from pathlib import Path

from selfimprove.types import Task


@functools.cache
def words() -> tuple[str, ...]:
    """The shipped word list (lowercase, one word a line)."""
    text = (Path(__file__).parent / "words.txt").read_text(encoding="utf-8")
    return tuple(w for w in text.split() if w.isalpha())


def make(level: int, rng: random.Random) -> Task:
    """One string task of the given level (1-5)."""
    word = rng.choice(words())
    if level == 1:
        prompt = f"Write the word '{word}' in uppercase letters. Answer with just the word."
        answer, meta = word.upper(), {"match": "exact", "case_sensitive": True}
    elif level == 2:
        prompt = f"What is the first letter of the word '{word}'? Answer with just the letter."
        answer, meta = word[0], {"match": "exact", "case_sensitive": False}
    elif level == 3:
        prompt = f"What is the last letter of the word '{word}'? Answer with just the letter."
        answer, meta = word[-1], {"match": "exact", "case_sensitive": False}
    elif level == 4:
        prompt = f"How many letters are in the word '{word}'? Answer with just the number."
        answer, meta = str(len(word)), {"match": "number"}
    elif level == 5:
        prompt = f"Write the word '{word}' backwards. Answer with just the reversed word."
        answer, meta = word[::-1], {"match": "exact", "case_sensitive": False}
    else:
        raise ValueError(f"strings has levels 1-5, got {level!r}")
    return Task(id="pending", prompt=prompt, answer=answer, difficulty=level, metadata=meta)

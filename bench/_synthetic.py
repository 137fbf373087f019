"""Synthetic rounds of stored examples for the store benchmarks (``bench_store.py``, ``bench_scaling.py``).

Examples are built the way the loop builds them: built-in tasks (all four
suites), four sampled answers per task graded pass/fail, and
``graphs.collect_examples.task_examples`` turning them into attempts, positives,
negatives and DPO pairs with lineage and the loop's metadata (suite, split,
difficulty, finish_reason, count). Answers are a few hundred characters of
worked reasoning (code tasks: a fenced function and a sentence), so documents
are about as long as a small student's. Nothing here calls a model.

    tasks = bench_tasks()
    examples = round_examples(tasks.train, round=3, n=500, seed=0)
    vectors = HashEmbeddings().embed([e.document for e in examples])
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

from selfimprove.graphs.collect_examples import task_examples
from selfimprove.memory.base import LINEAGE_FIELDS
from selfimprove.memory.embeddings import DIM
from selfimprove.tasks import TaskSet, builtin_tasks
from selfimprove.types import Example, Task

SUITES = ("arithmetic", "compare", "strings", "code")
MODEL = "bench-student"
SAMPLES_PER_TASK = 4

_OPENINGS = (
    "Let me work through this carefully, one step at a time, before I answer.",
    "First I restate the question in my own words so I do not misread it.",
    "I will check each part of the question and then give only the final answer.",
    "Reading the task again: it asks for a single value, so I compute it directly.",
)
_STEPS = (
    "The numbers involved are small, so I can do the calculation in my head and then "
    "double-check it by redoing it in a different order.",
    "A common mistake here is to copy one of the inputs instead of computing the result, "
    "so I make sure the value I write is the computed one.",
    "I compare the candidates one by one and keep the one that satisfies the condition, "
    "then confirm it against the wording of the question.",
    "Breaking the problem into two smaller steps makes the result easy to verify.",
)


def bench_tasks(train_per_suite: int = 150, heldout_per_suite: int = 100, seed: int = 0) -> TaskSet:
    """The built-in suites at the loop's default sizes (``TasksConfig``)."""
    train: list[Task] = []
    heldout: list[Task] = []
    for suite in SUITES:
        train += builtin_tasks(suite, split="train", n=train_per_suite, seed=seed)
        heldout += builtin_tasks(suite, split="heldout", n=heldout_per_suite)
    return TaskSet(train=train, heldout=heldout)


def _answer(task: Task, rng: random.Random, right: bool) -> str:
    """A worked answer of a few hundred characters, right or wrong."""
    if task.kind == "code":
        code = task.reference or "def f(x):\n    return x\n"
        if not right:  # an off-by-one, as a small student writes them
            code = code.replace("return ", "return 1 + ", 1)
        note = rng.choice(_STEPS)
        return f"```python\n{code}```\nThis handles the example in the task. {note}"
    value = task.answer or "0"
    if not right:
        value = str(int(value) + rng.choice((-1, 1, 10))) if value.lstrip("-").isdigit() else "no"
    return (
        f"{rng.choice(_OPENINGS)} {rng.choice(_STEPS)} {rng.choice(_STEPS)} The answer is {value}."
    )


def task_round(task: Task, round: int, rng: random.Random) -> list[Example]:
    """Every example one task yields in a round: four graded samples through ``task_examples``."""
    skill = rng.random()  # some tasks are easy for the student, some hard
    samples = []
    for _ in range(SAMPLES_PER_TASK):
        right = rng.random() < skill
        samples.append(
            {
                "text": _answer(task, rng, right),
                "finish_reason": "stop" if rng.random() > 0.05 else "length",
                "passed": right,
                "reason": "ok" if right else f"expected {task.answer!r}",
            }
        )
    return task_examples(task, samples, round=round, agent="student", model=MODEL)


def round_examples(tasks: Sequence[Task], *, round: int, n: int, seed: int = 0) -> list[Example]:
    """Exactly ``n`` distinct examples of one round, from tasks drawn in a seeded order."""
    rng = random.Random(f"{seed}:{round}")
    order = list(tasks)
    rng.shuffle(order)
    out: dict[str, Example] = {}
    while len(out) < n:
        for task in order:
            for example in task_round(task, round, rng):
                out.setdefault(example.id, example)
            if len(out) >= n:
                break
    return list(out.values())[:n]


def heldout_attempts(heldout: Sequence[Task], seed: int = 0) -> list[Example]:
    """The baseline's stored attempts at the held-out tasks (round 0, ``split="heldout"``)."""
    rng = random.Random(f"{seed}:baseline")
    attempts = (e for t in heldout for e in task_round(t, 0, rng) if e.kind == "attempt")
    return list({e.id: e for e in attempts}.values())  # identical answers are one attempt


def raw_metadata(example: Example) -> dict[str, Any]:
    """What a hand-written chromadb client stores to give the example back: flat fields.

    Lineage and metadata keys to filter on, and the text fields (the document
    joins prompt and completion, so they are kept apart too).
    """
    texts = {"prompt": example.prompt, "completion": example.completion, "reason": example.reason}
    flat = {name: getattr(example, name) for name in LINEAGE_FIELDS}
    flat |= texts | {"rejected": example.rejected}
    return {k: v for k, v in flat.items() if v is not None} | dict(example.metadata)


def raw_worked_where(task_id: str, round: int) -> dict[str, Any]:
    """``collect_agents._worked_where`` in plain chromadb keys: earlier positives of other tasks."""
    return {
        "$and": [
            {"kind": "positive"},
            {"round": {"$lt": round}},
            {"task_id": {"$ne": task_id}},
            {"split": {"$ne": "heldout"}},
        ]
    }


@register_embedding_function
class PrecomputedEmbeddings(EmbeddingFunction[Documents]):
    """Vectors computed before the clock starts, looked up by text.

    Both arms of a benchmark get the same vectors, so it measures the store, not
    the embedding model. Registered with chromadb (a collection records its
    embedding function by name).
    """

    def __init__(self) -> None:
        self.dim = DIM
        self._rows: dict[str, np.ndarray] = {}

    def put(self, texts: Iterable[str], vectors: np.ndarray) -> None:
        self._rows.update(zip(texts, vectors, strict=True))

    def clear(self) -> None:
        self._rows.clear()

    def embed(self, texts: list[str]) -> np.ndarray:
        try:
            return np.stack([self._rows[text] for text in texts])
        except KeyError as missing:
            raise KeyError(
                f"no precomputed vector for {str(missing)[:80]}: put() it first"
            ) from None

    def __call__(self, input: Documents) -> Embeddings:
        return list(self.embed(list(input)))

    @staticmethod
    def name() -> str:
        return "selfimprove-bench-precomputed"

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine"]

    def get_config(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> PrecomputedEmbeddings:
        return PrecomputedEmbeddings()

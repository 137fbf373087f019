"""Decontamination: no training example may leak an evaluation item. It fails loudly.

An example leaks a held-out task when its prompt is the same text after
normalization (case, whitespace, punctuation), or a near-copy: at least
``containment`` of the evaluation prompt's word 13-grams appear in the example's
prompt (prompts shorter than 13 words count as one gram, so for them only the
exact match applies). Tasks generated from one template with other constants are
not leaks — their answers differ — and are not flagged.

    check_decontaminated(train_examples, heldout_tasks)   # raises ContaminationError

Generated tasks (a task generator's output, before any example is sampled from
them) get the same prompt rules, and a task whose ``metadata["split_key"]``
(its template and constants) equals a held-out task's is a leak whatever its
wording: ``check_tasks_decontaminated(generated, heldout_tasks)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from selfimprove.types import Example, Task

NGRAM = 13
# Words, plus the symbols that change a task's meaning ("79 - 27" is not "79 + 27").
_WORD_RE = re.compile(r"\w+|[-+*/%<>=^]")


class ContaminationError(RuntimeError):
    """Training data contains an evaluation item; the message lists the offenders."""

    def __init__(self, leaks: list[tuple[str, str]], what: str = "training example(s)") -> None:
        shown = "; ".join(f"{example!r} leaks {task!r}" for example, task in leaks[:10])
        more = f" (and {len(leaks) - 10} more)" if len(leaks) > 10 else ""
        super().__init__(
            f"{len(leaks)} {what} contain held-out tasks: {shown}{more}. "
            "Remove them from the training data (or the task from the held-out set) and rerun."
        )
        self.leaks = leaks


def words(text: str) -> list[str]:
    return _WORD_RE.findall(text.casefold())


def ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    """Word n-grams of ``text``; a text shorter than ``n`` words is one gram."""
    tokens = words(text)
    if len(tokens) < n:
        return {tuple(tokens)} if tokens else set()
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def find_leaks(
    examples: Iterable[Example], heldout: Sequence[Task], *, containment: float = 0.8
) -> list[tuple[str, str]]:
    """``(example id, task id)`` for every example whose prompt leaks a held-out task."""
    return _prompt_leaks(((e.id, e.prompt) for e in examples), heldout, containment)


def _prompt_leaks(
    items: Iterable[tuple[str, str]], heldout: Sequence[Task], containment: float
) -> list[tuple[str, str]]:
    # items are (id, prompt): the first held-out task each prompt leaks, exact match first.
    exact = {" ".join(words(t.prompt)): t.id for t in heldout}
    grams = [(t.id, ngrams(t.prompt)) for t in heldout]
    index: dict[tuple[str, ...], set[int]] = {}
    for i, (_, task_grams) in enumerate(grams):
        for gram in task_grams:
            index.setdefault(gram, set()).add(i)
    leaks = []
    for item_id, prompt in items:
        key = " ".join(words(prompt))
        if key in exact:
            leaks.append((item_id, exact[key]))
            continue
        hits: dict[int, int] = {}
        for gram in ngrams(prompt):
            for i in index.get(gram, ()):
                hits[i] = hits.get(i, 0) + 1
        for i, count in hits.items():
            task_id, task_grams = grams[i]
            if count / len(task_grams) >= containment:
                leaks.append((item_id, task_id))
                break
    return leaks


def check_decontaminated(
    examples: Iterable[Example], heldout: Sequence[Task], *, containment: float = 0.8
) -> None:
    """Raise ``ContaminationError`` if any example leaks a held-out task."""
    leaks = find_leaks(examples, heldout, containment=containment)
    if leaks:
        raise ContaminationError(leaks)


def find_task_leaks(
    tasks: Iterable[Task], heldout: Sequence[Task], *, containment: float = 0.8
) -> list[tuple[str, str]]:
    """``(task id, held-out task id)`` for every generated task that leaks a held-out task.

    A task leaks when its prompt does (the ``find_leaks`` rules) or when both it
    and a held-out task carry ``metadata["split_key"]`` and the keys are equal
    (same template and constants in other words).
    """
    tasks = list(tasks)
    by_key = {str(t.metadata["split_key"]): t.id for t in heldout if "split_key" in t.metadata}
    prompts = ((str(i), t.prompt) for i, t in enumerate(tasks))  # by position: ids may repeat
    leaks = {int(i): held for i, held in _prompt_leaks(prompts, heldout, containment)}
    for i, task in enumerate(tasks):
        key = task.metadata.get("split_key")
        if i not in leaks and key is not None and str(key) in by_key:
            leaks[i] = by_key[str(key)]
    return [(t.id, leaks[i]) for i, t in enumerate(tasks) if i in leaks]


def check_tasks_decontaminated(
    tasks: Iterable[Task], heldout: Sequence[Task], *, containment: float = 0.8
) -> None:
    """Raise ``ContaminationError`` if any generated task leaks a held-out task."""
    leaks = find_task_leaks(tasks, heldout, containment=containment)
    if leaks:
        raise ContaminationError(leaks, what="generated task(s)")

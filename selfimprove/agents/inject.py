"""Error injection (RISE): verified hard negatives made from verified-correct answers.

Take a correct answer, edit a few tokens to plant one predefined error (a changed
value, a wrong operator, an off-by-one, a dropped branch ...), grade the edited
answer again and keep it only if it now FAILS. Each kept edit pairs with the
correct answer as a DPO pair whose two sides differ only in the planted error.

    from selfimprove.agents.inject import inject_errors, inject_errors_batch
    injections = inject_errors(task, correct, grader, per_answer=2, rng=random.Random(0))
    results = inject_errors_batch(tasks, corrects, grader, seed=0)   # one grade call for all
    yields(results)   # {"off_by_one": (tried, failing), ...}

The operators live in ``answer_errors`` (numbers, choices, words) and
``code_errors`` (Python, via ``ast``); ``OPERATORS`` has them all by name.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from selfimprove.agents.answer_errors import ANSWER_OPERATORS
from selfimprove.agents.code_errors import CODE_OPERATORS
from selfimprove.agents.injection import Injection, Operator
from selfimprove.types import Task

if TYPE_CHECKING:
    from selfimprove.tasks.verifiers import Grader

OPERATORS: dict[str, Operator] = {**ANSWER_OPERATORS, **CODE_OPERATORS}
"""Every built-in operator by name."""


class InjectionResult(BaseModel):
    """What injection made of one correct answer.

    Attributes:
        injections: kept edits, each verified to fail (at most ``per_answer``).
        tried: edits graded, by operator.
        failing: edits that failed when graded (kept or not), by operator.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    injections: list[Injection] = Field(default_factory=list)
    tried: dict[str, int] = Field(default_factory=dict)
    failing: dict[str, int] = Field(default_factory=dict)


def operators_for(task: Task, names: Sequence[str] | None = None) -> dict[str, Operator]:
    """The operators that fit a task's kind, optionally restricted to ``names``.

    Raises:
        ValueError: a name is not a built-in operator.
    """
    if names is not None:
        unknown = [n for n in names if n not in OPERATORS]
        if unknown:
            raise ValueError(f"unknown operators {unknown!r}; choose from {sorted(OPERATORS)}")
    family = CODE_OPERATORS if task.kind == "code" else ANSWER_OPERATORS
    return {n: op for n, op in family.items() if names is None or n in names}


def propose(
    task: Task,
    completion: str,
    rng: random.Random,
    operators: Sequence[str] | Mapping[str, Operator] | None = None,
) -> list[Injection]:
    """Unverified candidate edits: at most one per operator, in random order, all distinct."""
    chosen = dict(operators) if isinstance(operators, Mapping) else operators_for(task, operators)
    names = sorted(chosen)
    rng.shuffle(names)
    seen = {completion}
    out: list[Injection] = []
    for name in names:
        injection = chosen[name](task, completion, rng)
        if injection is not None and injection.text not in seen:
            seen.add(injection.text)
            out.append(injection)
    return out


def inject_errors(
    task: Task,
    completion: str,
    grader: Grader,
    *,
    operators: Sequence[str] | Mapping[str, Operator] | None = None,
    per_answer: int = 2,
    rng: random.Random | None = None,
    rounds: int = 2,
) -> list[Injection]:
    """Up to ``per_answer`` edits of a correct ``completion`` that the grader now rejects.

    Every operator that applies proposes one edit; all are graded in one batch and
    the first ``per_answer`` failing ones (in the random order) are returned, each
    with the verifier's ``reason``. While fewer than ``per_answer`` fail, the
    operators propose fresh edits, for at most ``rounds`` grade calls in all.
    """
    rng = rng if rng is not None else random.Random(0)
    return _inject([task], [completion], [rng], grader, operators, per_answer, rounds)[0].injections


def inject_errors_batch(
    tasks: Sequence[Task],
    completions: Sequence[str],
    grader: Grader,
    *,
    operators: Sequence[str] | Mapping[str, Operator] | None = None,
    per_answer: int = 2,
    seed: int = 0,
    rounds: int = 2,
) -> list[InjectionResult]:
    """``inject_errors`` for many answers, one grade call per round for all; one result each.

    Each answer gets its own generator seeded by ``(seed, task id, completion)``, so
    the edits of an answer do not depend on what else is in the batch and a re-run
    makes the same edits.
    """
    if len(tasks) != len(completions):
        raise ValueError(f"got {len(tasks)} tasks but {len(completions)} completions")
    rngs = [random.Random(f"{seed}:{t.id}:{c}") for t, c in zip(tasks, completions, strict=True)]
    return _inject(list(tasks), list(completions), rngs, grader, operators, per_answer, rounds)


def yields(results: Sequence[InjectionResult]) -> dict[str, tuple[int, int]]:
    """Per operator, ``(edits tried, edits that failed)`` summed over ``results``."""
    tried: Counter[str] = Counter()
    failing: Counter[str] = Counter()
    for result in results:
        tried.update(result.tried)
        failing.update(result.failing)
    return {name: (tried[name], failing[name]) for name in sorted(tried)}


def _inject(
    tasks: list[Task],
    completions: list[str],
    rngs: list[random.Random],
    grader: Grader,
    operators: Sequence[str] | Mapping[str, Operator] | None,
    per_answer: int,
    rounds: int,
) -> list[InjectionResult]:
    """Propose, grade in one batch, keep failing edits; repeat for answers still short."""
    if per_answer < 0 or rounds < 1:
        raise ValueError(f"need per_answer >= 0 and rounds >= 1, got {per_answer!r}, {rounds!r}")
    kept: list[list[Injection]] = [[] for _ in tasks]
    tried: list[Counter[str]] = [Counter() for _ in tasks]
    failing: list[Counter[str]] = [Counter() for _ in tasks]
    seen = [{c} for c in completions]
    for _ in range(rounds):
        flat: list[tuple[int, Injection]] = []
        for i in (i for i in range(len(tasks)) if len(kept[i]) < per_answer):
            for proposal in propose(tasks[i], completions[i], rngs[i], operators):
                if proposal.text not in seen[i]:
                    seen[i].add(proposal.text)
                    flat.append((i, proposal))
        if not flat:
            break
        verdicts = grader.grade([tasks[i] for i, _ in flat], [p.text for _, p in flat])
        for (i, proposal), verdict in zip(flat, verdicts, strict=True):
            tried[i][proposal.operator] += 1
            if verdict.passed:
                continue  # the edit did not break the answer: not a negative
            failing[i][proposal.operator] += 1
            if len(kept[i]) < per_answer:
                kept[i].append(proposal.model_copy(update={"reason": verdict.reason}))
    return [
        InjectionResult(injections=k, tried=dict(t), failing=dict(f))
        for k, t, f in zip(kept, tried, failing, strict=True)
    ]


__all__ = [
    "OPERATORS",
    "Injection",
    "InjectionResult",
    "Operator",
    "inject_errors",
    "inject_errors_batch",
    "operators_for",
    "propose",
    "yields",
]

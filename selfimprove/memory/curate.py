"""Curation of a round's training data: confidence filter, near-copies within a task, a cap.

CLEAR-style: estimate how sure we are that each positive (and the chosen side of
each DPO pair) is genuinely good from the round's own sampled attempts (no extra
model calls) and drop the doubtful ones; then keep one example of each group of
near-copies within a task; then optionally cap the examples per task::

    positives, pairs, report = curate(
        positives, pairs, attempts, {t.id: t for t in tasks}, embeddings=MiniLMEmbeddings()
    )
    counts |= report.counts()   # curate/positives_in, curate/low_confidence, ...
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from selfimprove.memory.dedup import cluster_near_duplicates, normalize_text
from selfimprove.memory.embeddings import embed_texts
from selfimprove.tasks.extract import extract_code
from selfimprove.types import Example, Task

TRUNCATED = 0.0  # confidence of an answer cut off at the token limit
SAMPLER = "student"  # the agent of sampled attempts (collect's default), whose agreement counts


class CurationReport(BaseModel):
    """What ``curate`` kept and why it dropped the rest (positives and pairs together).

    ``positives_in + pairs_in == positives_kept + pairs_kept + low_confidence +
    near_duplicates + over_cap``.
    """

    model_config = ConfigDict(frozen=True)

    positives_in: int = Field(default=0, ge=0)
    positives_kept: int = Field(default=0, ge=0)
    pairs_in: int = Field(default=0, ge=0)
    pairs_kept: int = Field(default=0, ge=0)
    low_confidence: int = Field(default=0, ge=0)  # confidence < min_confidence
    near_duplicates: int = Field(default=0, ge=0)  # near-copies of a kept example of the task
    over_cap: int = Field(default=0, ge=0)  # beyond max_per_task

    def counts(self) -> dict[str, int]:
        """Flat ``curate/<name>`` counts for the round's record."""
        return {f"curate/{name}": value for name, value in self.model_dump().items()}


def _choices(task: Task | None) -> int:
    """Number of choices of a multiple-choice task, 0 for any other task."""
    if task is None:
        return 0
    choices = task.metadata.get("choices") or ()
    match = task.metadata.get("match", "choice" if choices else None)
    return len(choices) if match == "choice" else 0


def _beyond_chance(agreement: float, chance: float) -> float:
    """``(agreement - chance) / (1 - chance)`` clipped to [0, 1]; chance 1 leaves nothing."""
    if chance >= 1.0:
        return 0.0
    return min(1.0, max(0.0, (agreement - chance) / (1.0 - chance)))


def example_confidence(
    example: Example, attempts: Sequence[Example], task: Task | None = None
) -> float:
    """Confidence in [0, 1] that a positive (or a pair's chosen side) is a good training example.

    Estimated from the round's attempts of the same task (other tasks' attempts
    are ignored), without model calls. The rule, first match wins:

    1. Truncated: an attempt with this exact completion stopped at the token
       limit (``metadata["finish_reason"] == "length"``): ``TRUNCATED`` (0).
    2. Self-debug fix (``agent="self_debug"``, or a pair whose chosen text only
       a passing self-debug turn produced, e.g. an injected error built on a
       fix): a code task's fix passed its unit tests, 1. An answer task's fix
       found at debug turn ``t`` scores ``1/t`` (one pass in ``t`` turns),
       corrected for chance among the ``c - 1`` choices the feedback left open
       on a ``c``-choice task (so a 2-choice fix scores 0: it is a flip).
    3. Sampled answer to a code task: it passed the task's unit tests, 1 (a
       hard task solved once in k samples is the most useful data, not noise).
    4. Sampled answer to an answer task: agreement = share of the task's sampled attempts
       (``agent="student"``; an attempt stands for ``metadata["count"]``
       identical samples) that passed; on a ``c``-choice task
       (``metadata["match"] == "choice"``) a pass can be a guess, so
       ``(agreement - 1/c) / (1 - 1/c)`` clipped to [0, 1]. No sampled
       attempts: 1 (a verified answer with nothing to doubt it).

    Without ``task`` there is no chance correction and a fix counts as an answer task's.
    """
    text = example.completion
    mine = {a.id: a for a in attempts if a.kind == "attempt" and a.task_id == example.task_id}
    same = [a for a in mine.values() if a.completion == text]
    if any(a.metadata.get("finish_reason") == "length" for a in same):
        return TRUNCATED
    choices = _choices(task)
    fixes = [a for a in same if a.agent == "self_debug" and a.passed]
    sampled_pass = any(a.passed and a.agent == SAMPLER for a in same)
    if example.agent == "self_debug" or (fixes and not sampled_pass):
        if task is not None and task.kind == "code":
            return 1.0
        turn = min(int(a.metadata.get("turn", 1)) for a in fixes or [example])
        return _beyond_chance(1.0 / max(1, turn), 1.0 / (choices - 1) if choices >= 2 else 0.0)
    if task is not None and task.kind == "code":
        return 1.0  # passing unit tests is no guess, however rarely the samples passed
    weights = [
        (int(a.metadata.get("count", 1)), bool(a.passed))
        for a in mine.values()
        if a.agent == SAMPLER
    ]
    total = sum(w for w, _ in weights)
    if total == 0:
        return 1.0
    agreement = sum(w for w, passed in weights if passed) / total
    return _beyond_chance(agreement, 1.0 / choices if choices >= 2 else 0.0)


def canonical_code(text: str) -> str:
    """Code with comments, layout and local names made uniform (``v0``, ``v1``, ...).

    Two programs that differ only in comments, whitespace or the names of their
    arguments and variables get the same text; function names, attributes,
    builtins and constants are kept. Text that does not parse is only
    whitespace- and case-normalised.
    """
    try:
        tree = ast.parse(extract_code(text))
        bound: dict[str, str] = {}
        for node in ast.walk(tree):  # breadth first: the same order for alpha-equivalent code
            if isinstance(node, ast.arg):
                bound.setdefault(node.arg, f"v{len(bound)}")
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                bound.setdefault(node.id, f"v{len(bound)}")
        for node in ast.walk(tree):
            if isinstance(node, ast.arg):
                node.arg = bound[node.arg]
            elif isinstance(node, ast.Name):
                node.id = bound.get(node.id, node.id)
        return ast.unparse(tree)
    except (SyntaxError, ValueError, RecursionError):
        return normalize_text(text)


def curate(
    positives: Sequence[Example],
    pairs: Sequence[Example],
    attempts: Sequence[Example],
    tasks: Mapping[str, Task] | None = None,
    *,
    min_confidence: float = 0.5,
    near_duplicate: float | None = 0.95,
    embeddings: Any = None,
    max_per_task: int | None = None,
) -> tuple[list[Example], list[Example], CurationReport]:
    """Filter a round's positives and DPO pairs; pure and deterministic.

    1. Drop examples with ``example_confidence < min_confidence`` (0 keeps all).
    2. Within each task (never across tasks: one template's tasks look alike but
       are different data), keep one example of each group of near-copies:
       positives by completion; pairs by chosen side among pairs with the same
       rejected answer (the rejected side is compared exactly, as injected
       errors are deliberately one-token edits that embeddings cannot tell
       apart); a fix trained with its debugging conversation in context
       (``metadata["messages"]``) only with the same conversation. Texts are
       compared normalised (code canonicalised, see
       ``canonical_code``), then, given ``embeddings``, by cosine similarity
       >= ``near_duplicate`` (``dedup.cluster_near_duplicates``, leader
       linkage). ``near_duplicate=None`` skips this step.
    3. Keep at most ``max_per_task`` positives and as many pairs per task.

    Where one example must go, the preferred one stays: higher confidence, then
    shorter completion, then earlier in the input. The lists come back in input order.

    Args:
        positives, pairs: the round's positives and pairs.
        attempts: the round's attempts (every task's; see ``example_confidence``).
        tasks: tasks by id, for multiple-choice chance correction and code rules.
        min_confidence: confidence below which an example is dropped, in [0, 1].
        near_duplicate: cosine similarity of near-copies, or None.
        embeddings: an embedding function; None compares normalised text only.
        max_per_task: cap per task and list, or None.
    """
    if not 0.0 <= min_confidence <= 1.0:
        raise ValueError(
            f"min_confidence {min_confidence!r} is a confidence: use a value in [0, 1]"
        )
    if near_duplicate is not None and not -1.0 <= near_duplicate <= 1.0:
        raise ValueError(f"near_duplicate {near_duplicate!r} is a cosine: use [-1, 1] or None")
    if max_per_task is not None and max_per_task < 1:
        raise ValueError(f"max_per_task {max_per_task!r} must be at least 1, or None for no cap")
    tasks = tasks or {}
    by_task: dict[str | None, list[Example]] = {}
    for attempt in attempts:
        by_task.setdefault(attempt.task_id, []).append(attempt)

    def facts(example: Example) -> _Facts:
        task = tasks.get(example.task_id) if example.task_id is not None else None
        code = task is not None and task.kind == "code"

        def norm(value: str) -> str:
            return canonical_code(value) if code else normalize_text(value)

        no_id = normalize_text(example.prompt) if example.task_id is None else ""
        messages = str(example.metadata.get("messages", ""))
        return _Facts(
            score=example_confidence(example, by_task.get(example.task_id, []), task),
            task=(example.task_id, no_id),
            # a fix trained with its debugging conversation in context is other data
            group=(example.task_id, no_id, norm(example.rejected or ""), messages),
            text=norm(example.completion),
        )

    options = (min_confidence, near_duplicate, embeddings, max_per_task)
    kept_positives, dropped = _select(positives, [facts(e) for e in positives], *options)
    kept_pairs, dropped_pairs = _select(pairs, [facts(e) for e in pairs], *options)
    low, near, cap = (a + b for a, b in zip(dropped, dropped_pairs, strict=True))
    report = CurationReport(
        positives_in=len(positives),
        positives_kept=len(kept_positives),
        pairs_in=len(pairs),
        pairs_kept=len(kept_pairs),
        low_confidence=low,
        near_duplicates=near,
        over_cap=cap,
    )
    return kept_positives, kept_pairs, report


class _Facts(NamedTuple):
    score: float  # example_confidence
    task: tuple[str | None, str]  # what max_per_task counts by: task id (or prompt)
    group: tuple[str | None, str, str, str]  # near-copies only within: task, rejected, context
    text: str  # the normalised completion


def _select(
    examples: Sequence[Example],
    facts: list[_Facts],
    min_confidence: float,
    near_duplicate: float | None,
    embeddings: Any,
    max_per_task: int | None,
) -> tuple[list[Example], tuple[int, int, int]]:
    """Kept examples (input order) and how many were dropped: low confidence, near-copies, cap."""
    # Preference order: of a group that must shrink, the first stays.
    alive = sorted(
        (i for i, f in enumerate(facts) if f.score >= min_confidence),
        key=lambda i: (-facts[i].score, len(examples[i].completion), i),
    )
    kept = alive
    if near_duplicate is not None:
        groups: dict[tuple[str | None, str, str, str], dict[str, int]] = {}
        for i in alive:  # the same normalised text within a group: keep the first
            groups.setdefault(facts[i].group, {}).setdefault(facts[i].text, i)
        members = [list(group.values()) for group in groups.values()]
        if embeddings is not None:
            members = _near_leaders(examples, facts, members, embeddings, near_duplicate)
        rank = {i: r for r, i in enumerate(alive)}
        kept = sorted((i for group in members for i in group), key=rank.__getitem__)
    capped: list[int] = []
    per_task: dict[tuple[str | None, str], int] = {}
    for i in kept:
        per_task[facts[i].task] = per_task.get(facts[i].task, 0) + 1
        if max_per_task is None or per_task[facts[i].task] <= max_per_task:
            capped.append(i)
    dropped = (len(examples) - len(alive), len(alive) - len(kept), len(kept) - len(capped))
    return [examples[i] for i in sorted(capped)], dropped


def _near_leaders(
    examples: Sequence[Example],
    facts: list[_Facts],
    groups: list[list[int]],
    embeddings: Any,
    threshold: float,
) -> list[list[int]]:
    """Each group (in preference order) cut to the first member of each near-copy cluster."""
    todo = [i for group in groups if len(group) > 1 for i in group]
    vectors = embed_texts(embeddings, [facts[i].text for i in todo])  # one batch
    row = {i: r for r, i in enumerate(todo)}
    out = []
    for group in groups:
        if len(group) > 1:
            rows = vectors[[row[i] for i in group]]
            clusters = cluster_near_duplicates(
                [examples[i] for i in group], rows, threshold=threshold
            )
            group = [group[cluster[0]] for cluster in clusters]
        out.append(group)
    return out

"""How one task's results in a collect round become stored ``Example`` s, with lineage.

Pure functions over plain data (the collect graph's state), so they are easy to
test and a re-run builds identical examples (content-hash ids):

- every sampled answer is an ``attempt`` (identical answers are one attempt whose
  ``metadata["count"]`` says how many samples gave it; ``workflow`` and
  ``workflow_arm`` say whether a recalled workflow was in its prompt); each distinct correct answer a
  ``positive`` and each distinct wrong one a ``negative`` (parent: its attempt);
- each distinct wrong answer pairs with a correct one: ``pair`` with
  ``error_type="sampled"`` (parent: the positive);
- each self-debug turn is an ``attempt`` with ``agent="self_debug"`` (parent: the
  negative it fixes); a fix is a ``positive``, a second ``positive`` with the
  debugging conversation (task, failed answer, feedback) in ``metadata["messages"]``
  (parent: the first; LeTI's feedback-conditioned SFT), and a (fixed, failed)
  ``pair`` with ``error_type="self_debug"``;
- each verified injected error is a (correct, edited) ``pair`` with
  ``agent="inject"`` and ``error_type`` = the operator (parent: the positive).

Every example uses the task's plain prompt, so training matches evaluation even
when the answer was generated with worked examples in the prompt.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from selfimprove.agents.debug import DebugTrajectory
from selfimprove.types import Example, Task


def task_examples(
    task: Task,
    samples: Sequence[Mapping[str, Any]],
    *,
    round: int,
    agent: str,
    model: str,
    trajectory: DebugTrajectory | None = None,
    injections: Sequence[Mapping[str, Any]] = (),
    retrieved: Sequence[str] = (),
) -> list[Example]:
    """Every example one task yields in a round.

    Args:
        task: the task.
        samples: its graded answers: ``text``, ``finish_reason``, ``passed``, ``reason``.
        round, agent, model: lineage of the sampled answers.
        trajectory: its self-debugging, if any.
        injections: verified injected errors: ``source`` (the correct answer edited),
            ``text``, ``operator``, ``description``, ``reason``.
        retrieved: ids of the worked examples that were in the prompt.
    """
    meta: dict[str, Any] = {"suite": task.suite, "split": task.split, "difficulty": task.difficulty}
    base = Example(kind="attempt", prompt=task.prompt, task_id=task.id, round=round, model=model)
    out: list[Example] = []
    positives: dict[str, Example] = {}
    negatives: dict[str, Example] = {}
    extra = {"retrieved": ",".join(retrieved)} if retrieved else {}
    copies = Counter(sample["text"] for sample in samples)
    for sample in samples:
        # identical answers share one attempt id: "count" says how many samples gave it
        sampled = {"finish_reason": sample["finish_reason"], "count": copies[sample["text"]]}
        if sample.get("workflow"):
            sampled |= {"workflow": sample["workflow"], "workflow_arm": sample["arm"]}
        attempt = base.model_copy(
            update={
                "completion": sample["text"],
                "agent": agent,
                "passed": sample["passed"],
                "reason": sample["reason"],
                "metadata": meta | extra | sampled,
            }
        )
        out.append(attempt)
        kind, bucket = ("positive", positives) if sample["passed"] else ("negative", negatives)
        if sample["text"] not in bucket:
            update = {"kind": kind, "parent_id": attempt.id, "metadata": meta}
            bucket[sample["text"]] = attempt.model_copy(update=update)
    out += [*positives.values(), *negatives.values()]
    correct = list(positives.values())
    for j, negative in enumerate(negatives.values() if correct else ()):
        chosen = correct[j % len(correct)]  # spread the wrong answers over the right ones
        out.append(pair(chosen, negative.completion, "sampled", agent, negative.reason))
    if trajectory is not None:
        out += debug_examples(trajectory, base, meta, negatives.get(trajectory.failed), positives)
    for injection in injections:
        parent = positives.get(injection["source"])
        if parent is not None:
            edited = pair(
                parent, injection["text"], injection["operator"], "inject", injection["reason"]
            )
            out.append(
                edited.model_copy(update={"metadata": meta | {"edit": injection["description"]}})
            )
    return out


def debug_examples(
    trajectory: DebugTrajectory,
    base: Example,
    meta: dict[str, Any],
    failed: Example | None,
    positives: dict[str, Example],
) -> list[Example]:
    """A self-debug trajectory as attempts; a fix also as a positive and a (fixed, failed) pair.

    A fix is added to ``positives`` (by text) so that injected errors can build on it.
    """
    out: list[Example] = []
    for number, turn in enumerate(trajectory.turns, 1):
        attempt = base.model_copy(
            update={
                "completion": turn.completion,
                "agent": "self_debug",
                "parent_id": failed.id if failed else None,
                "passed": turn.verdict.passed,
                "reason": turn.verdict.reason,
                "metadata": meta | {"turn": number, "feedback": turn.feedback},
            }
        )
        out.append(attempt)
        if turn.verdict.passed:
            fixed = attempt.model_copy(update={"kind": "positive", "parent_id": attempt.id})
            positives.setdefault(turn.completion, fixed)
            reason = trajectory.verdict.reason
            out += [fixed, pair(fixed, trajectory.failed, "self_debug", "self_debug", reason)]
            # LeTI: the fix again, with the failed answer and the feedback in context
            messages = json.dumps(turn.messages, ensure_ascii=False)
            in_context = fixed.model_copy(
                update={"parent_id": fixed.id, "metadata": fixed.metadata | {"messages": messages}}
            )
            out.append(in_context)
    return out


def pair(chosen: Example, rejected: str, error_type: str, agent: str, reason: str) -> Example:
    """A DPO pair preferring ``chosen`` (its parent) over ``rejected``."""
    return Example(
        kind="pair",
        prompt=chosen.prompt,
        completion=chosen.completion,
        rejected=rejected,
        task_id=chosen.task_id,
        round=chosen.round,
        agent=agent,
        model=chosen.model,
        parent_id=chosen.id,
        reason=reason,
        error_type=error_type,
        metadata=dict(chosen.metadata),
    )

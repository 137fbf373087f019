"""Self-review (intrinsic self-correction): the model checks its own answer with no feedback.

The model sees the task and its answer and is asked to check it and reply with
its final, possibly corrected, answer. No verifier feedback is shown; the grader
only scores the before and after answers. Given both right and wrong answers this
measures the self-correction counts: right→right (confidence), wrong→right
(critique) and right→wrong (damage):

    from selfimprove.agents.review import review_counts, self_review
    reviews = self_review(model, grader, tasks, answers, verdicts)
    review_counts(reviews)  # {"reviewed": 40, "right_to_right": 17, "wrong_to_right": 2, ...}

All reviews are generated in one batched ``generate`` (per generation-settings
group) and graded in one batch. The reply is graded as it is: an empty reply or
prose without the answer counts as whatever the grader says (usually wrong), not
as "kept the answer"; what the model says after reviewing is its answer, and a
reviewer that loses the format does damage. The conversation comes from
``agents/prompts/self_review.txt``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from selfimprove.agents.self_edit import ChatTemplate
from selfimprove.eval.evaluate import generate_for_tasks
from selfimprove.models.base import ChatModel
from selfimprove.tasks.verifiers import Grader
from selfimprove.types import Task, Verdict

PROMPT_PATH = Path(__file__).parent / "prompts" / "self_review.txt"


class Review(BaseModel):
    """One answer before and after the model reviewed it, both graded."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    before: str
    before_passed: bool
    after: str
    after_passed: bool
    after_reason: str


def self_review(
    model: ChatModel,
    grader: Grader,
    tasks: Sequence[Task],
    answers: Sequence[str],
    verdicts: Sequence[Verdict],
    *,
    temperature: float = 0.0,
    seed: int | None = 0,
    prompt: ChatTemplate | None = None,
) -> list[Review]:
    """Ask ``model`` to check each answer and give its final one; grade what it says.

    Args:
        model: the reviewer (usually the model that wrote the answers).
        grader: scores the reviewed answers; its feedback is never shown to the model.
        tasks, answers, verdicts: the answers under review and their grades, aligned.
        temperature, seed: sampling of the reviews.
        prompt: the conversation template (default: ``prompts/self_review.txt``).

    Returns:
        One review per answer, in order.
    """
    if not len(tasks) == len(answers) == len(verdicts):
        raise ValueError(
            f"got {len(tasks)} tasks, {len(answers)} answers, {len(verdicts)} verdicts"
        )
    if not tasks:
        return []
    prompt = prompt or ChatTemplate.load(PROMPT_PATH)
    asks = [prompt.render(t, answer=a) for t, a in zip(tasks, answers, strict=True)]
    rows = generate_for_tasks(model, tasks, asks, temperature=temperature, seed=seed)
    after = [row[0].text if row else "" for row in rows]  # no reply is an empty answer
    graded = grader.grade(tasks, after)
    return [
        Review(
            task_id=t.id,
            before=a,
            before_passed=v.passed,
            after=text,
            after_passed=g.passed,
            after_reason=g.reason,
        )
        for t, a, v, text, g in zip(tasks, answers, verdicts, after, graded, strict=True)
    ]


def review_counts(reviews: Sequence[Review]) -> dict[str, int]:
    """Self-correction counts: reviewed, right→right, right→wrong, wrong→right, wrong→wrong."""
    pairs = [(r.before_passed, r.after_passed) for r in reviews]
    return {
        "reviewed": len(pairs),
        "right_to_right": pairs.count((True, True)),
        "right_to_wrong": pairs.count((True, False)),
        "wrong_to_right": pairs.count((False, True)),
        "wrong_to_wrong": pairs.count((False, False)),
    }


__all__ = ["Review", "review_counts", "self_review"]

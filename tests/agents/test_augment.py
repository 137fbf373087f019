"""Failure-driven augmentation: verified, decontaminated, de-duplicated new tasks."""

from __future__ import annotations

import json

import pytest

from selfimprove.agents.augment import (
    AugmentResult,
    augment_failures,
    parse_task,
)
from selfimprove.tasks import builtin_tasks
from selfimprove.tasks.suite import split_key, split_of
from selfimprove.testing import FakeChatModel
from selfimprove.types import Task

FAILED = [
    *builtin_tasks("arithmetic", split="train", n=2),
    *builtin_tasks("compare", split="train", n=2),
    *builtin_tasks("strings", split="train", n=2),
    *builtin_tasks("code", split="train", n=3),
]
CUSTOM = Task(id="custom/1", prompt="Name a prime number above 90.", answer="97")
HELDOUT = [
    t for s in ("arithmetic", "compare", "strings") for t in builtin_tasks(s, split="heldout", n=40)
]

GOOD_CODE = {
    "prompt": "Write a Python function `triple_evens(xs)` that returns the even numbers of `xs` times 3.",
    "entry_point": "triple_evens",
    "tests": "assert triple_evens([1, 2, 4]) == [6, 12]\nassert triple_evens([]) == []",
    "reference": "def triple_evens(xs):\n    return [3 * x for x in xs if x % 2 == 0]\n",
}
WRONG_CODE = GOOD_CODE | {
    "prompt": "Write a Python function `triple_evens(xs)` that triples the even numbers of `xs`.",
    "reference": "def triple_evens(xs):\n    return [3 * x for x in xs]\n",
}
COMPARE = {
    "prompt": "Which number is larger: 1243 or 1234? Answer with just the number.",
    "answer": "1243",
    "choices": ["1243", "1234"],
}


def _kept_summary(result: AugmentResult) -> int:
    return len(result.tasks) + sum(n for r, n in result.rejected.items() if r != "unsupported")


def test_self_mode_makes_verified_variants_and_counts_what_it_cannot_vary(grader):
    result = augment_failures([*FAILED, CUSTOM], grader, per_task=2, seed=5, heldout=HELDOUT)

    assert result.rejected.get("unsupported") == 1  # the custom task: no maker, no teacher
    assert result.proposed == 2 * len(FAILED) == _kept_summary(result)
    assert len(result.tasks) >= len(FAILED)
    by_id = {t.id: t for t in FAILED}
    for task in result.tasks:
        parent = by_id[task.metadata["augmented_from"]]
        assert task.suite == parent.suite and task.difficulty == parent.difficulty
        assert task.split == "train" and split_of(split_key(task)) == "train"
        assert task.metadata["origin"] == "variant" and task.id.startswith("aug-")
    assert {split_key(t) for t in result.tasks}.isdisjoint(split_key(t) for t in FAILED + HELDOUT)
    solutions = [t.reference if t.kind == "code" else t.answer for t in result.tasks]
    assert all(v.passed for v in grader.grade(result.tasks, solutions))
    # deterministic for a seed, different for another
    assert (
        augment_failures(FAILED, grader, per_task=2, seed=5, heldout=HELDOUT).tasks == result.tasks
    )
    assert augment_failures(FAILED, grader, per_task=2, seed=6).tasks != result.tasks


def test_self_mode_drops_known_tasks_and_ones_that_leak_a_heldout_task(grader):
    first = augment_failures(FAILED, grader, per_task=1, seed=0)
    assert first.tasks and first.rejected == {}
    # the same draw again, with every task it made declared held-out: all contaminated
    as_heldout = [
        t.model_copy(update={"id": f"h{i}", "split": "heldout"}) for i, t in enumerate(first.tasks)
    ]
    leaked = augment_failures(FAILED, grader, per_task=1, seed=0, heldout=as_heldout)
    assert leaked.tasks == [] and leaked.rejected == {"contaminated": len(first.tasks)}
    # a held-out task with the same template and constants leaks whatever its wording
    reworded = [t.model_copy(update={"prompt": "Write it."}) for t in as_heldout]
    leaked = augment_failures(FAILED, grader, per_task=1, seed=0, heldout=reworded)
    code_variants = sum(t.kind == "code" for t in first.tasks)
    assert code_variants and leaked.rejected == {"contaminated": code_variants}
    # known split keys are never proposed again
    known = [split_key(t) for t in first.tasks]
    again = augment_failures(FAILED, grader, per_task=1, seed=0, known=known)
    assert again.tasks and not {split_key(t) for t in again.tasks} & set(known)


def test_teacher_mode_keeps_only_parsed_solvable_new_clean_tasks(grader):
    code_task, arith_task = FAILED[6], FAILED[0]
    compare_task, strings_task = FAILED[2], FAILED[4]
    replies = [
        f"Here you go:\n```json\n{json.dumps(GOOD_CODE)}\n```",  # kept
        json.dumps(WRONG_CODE),  # its reference fails its tests: unsolvable
        "I'm sorry, I can't write tasks.",  # parse_error
        json.dumps({"prompt": "What is 40 + 2? Answer with a number.", "answer": "forty-two"}),
        json.dumps(COMPARE),  # kept
        "Sure! " + json.dumps(COMPARE) + " Enjoy.",  # the same task again: duplicate
        json.dumps({"prompt": HELDOUT[0].prompt, "answer": HELDOUT[0].answer}),  # contaminated
        json.dumps({"prompt": "Spell 'known' backwards.", "answer": "NWONK"}),  # known: duplicate
    ]
    teacher = FakeChatModel(replies, name="teacher-x")

    result = augment_failures(
        [code_task, arith_task, compare_task, strings_task],
        grader,
        per_task=2,
        seed=3,
        teacher=teacher,
        heldout=HELDOUT,
        known=["Spell 'known'   BACKWARDS."],
    )

    assert [t.prompt for t in result.tasks] == [GOOD_CODE["prompt"], COMPARE["prompt"]]
    assert result.proposed == 8 == _kept_summary(result)
    assert result.rejected == {"contaminated": 1, "duplicate": 2, "parse_error": 1, "unsolvable": 2}
    code_new, compare_new = result.tasks
    assert code_new.kind == "code" and code_new.entry_point == "triple_evens"
    assert code_new.metadata == {
        "augmented_from": code_task.id,
        "origin": "teacher",
        "teacher": "teacher-x",
    }
    assert compare_new.metadata["match"] == "choice" and compare_new.split == "train"
    assert grader.grade([code_new], [code_new.reference])[0].passed
    # one batched call, n per task, showing each failed task
    [call] = teacher.calls
    assert len(call.prompts) == 4 and call.n == 2 and call.seed == 3
    assert json.dumps(code_task.prompt) in call.prompts[0][-1]["content"]
    assert '"reference"' in call.prompts[0][-1]["content"]
    assert '"answer"' in call.prompts[1][-1]["content"]


def test_a_teacher_returning_nothing_usable_is_counted_not_raised(grader):
    garbage = ["", "{", "[1, 2]", '{"prompt": 5, "answer": "1"}', '{"prompt": "x"}', "\x00{{}"]
    teacher = FakeChatModel(garbage)
    result = augment_failures(FAILED[:3], grader, per_task=2, teacher=teacher)
    assert result.tasks == [] and result.rejected == {"parse_error": 6} and result.proposed == 6


def test_parse_task_needs_every_code_key_and_real_tests():
    code_task = FAILED[6]
    assert parse_task(json.dumps(GOOD_CODE), code_task) is not None
    for broken in (
        GOOD_CODE | {"tests": "print('no asserts')"},
        GOOD_CODE | {"entry_point": "not a name"},
        {k: v for k, v in GOOD_CODE.items() if k != "reference"},
        GOOD_CODE | {"reference": 3},
    ):
        assert parse_task(json.dumps(broken), code_task) is None
    answer = parse_task('{"prompt": "What is 2 + 2?", "answer": 4}', FAILED[0])
    assert answer is not None and answer.answer == "4" and answer.metadata["match"] == "number"


def test_heldout_failures_never_seed_augmentation(grader):
    heldout = builtin_tasks("arithmetic", split="heldout", n=1)
    with pytest.raises(ValueError, match="held-out tasks \\['arithmetic/"):
        augment_failures(heldout, grader)

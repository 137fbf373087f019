"""Programmatic variants: new, same template and level, train split only, and solvable."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

import pytest

from selfimprove.config import SandboxConfig
from selfimprove.sandbox import SandboxPool
from selfimprove.tasks import SUITES, Grader, builtin_tasks, code
from selfimprove.tasks.suite import split_key, split_of
from selfimprove.tasks.variants import can_vary, variants
from selfimprove.types import Task

FAST = SandboxConfig(workers=2, wall_timeout_s=2.0, cpu_time_s=2, memory_mb=256)


@pytest.fixture(scope="module")
def grader() -> Iterator[Grader]:
    with SandboxPool(FAST) as pool:
        yield Grader(pool)


def _shape(task: Task) -> str:
    """What a variant must keep: the template (code) or the prompt with its numbers/word blanked."""
    if task.kind == "code":
        return f"{task.metadata['template']}/{task.difficulty}"
    return f"{task.difficulty}:" + re.sub(r"'[a-z]+'|\d+", "_", task.prompt)


def _solution(task: Task) -> str:
    return task.reference if task.kind == "code" else task.answer


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_variants_are_new_train_tasks_of_the_same_shape_that_verify(suite, grader):
    train = builtin_tasks(suite, split="train", n=15)
    train_keys = {split_key(t) for t in train}
    made: list[Task] = []
    for task in train:
        assert can_vary(task)
        found = variants(task, 3, random.Random(task.id), exclude=train_keys)
        assert found, task
        keys = [split_key(v) for v in found]
        assert len(set(keys)) == len(keys) == len({v.id for v in found})
        assert not set(keys) & train_keys
        for v in found:
            assert _shape(v) == _shape(task) and v.kind == task.kind and v.suite == suite
            assert v.split == "train" and split_of(split_key(v)) == "train"
            assert v.id.startswith("aug-") and v.prompt != task.prompt
            assert v.metadata["augmented_from"] == task.id and v.metadata["origin"] == "variant"
            assert set(task.metadata) <= set(v.metadata)
        made += found
    assert len(made) >= 2 * len(train)
    # ids are content hashes: two failed tasks may yield the same variant, never one id for two
    assert len({v.id for v in made}) == len({(v.id, v.prompt) for v in made})
    verdicts = grader.grade(made, [_solution(v) for v in made])
    assert [(v.id, r.reason) for v, r in zip(made, verdicts, strict=True) if not r.passed] == []
    # a wrong answer fails: the check is real
    wrong = [v.answer + "1" if v.kind == "answer" else "def nothing(): pass" for v in made[:5]]
    assert not any(r.passed for r in grader.grade(made[:5], wrong))


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_variants_never_produce_a_heldout_identity(suite):
    heldout = builtin_tasks(suite, split="heldout", n=100)
    heldout_keys = {split_key(t) for t in heldout}
    heldout_prompts = {t.prompt for t in heldout}
    made = [
        v
        for task in builtin_tasks(suite, split="train", n=40, seed=3)
        for v in variants(task, 6, random.Random(f"x:{task.id}"))
    ]
    assert len(made) > 150
    assert all(split_of(split_key(v)) == "train" for v in made)
    assert not {split_key(v) for v in made} & heldout_keys
    assert not {v.prompt for v in made} & heldout_prompts


def test_variants_are_deterministic_and_respect_exclude():
    task = builtin_tasks("code", split="train", n=5)[4]
    first = variants(task, 4, random.Random(1))
    assert first == variants(task, 4, random.Random(1))
    assert first != variants(task, 4, random.Random(2))
    again = variants(task, 4, random.Random(1), exclude={split_key(v) for v in first})
    assert again and not {split_key(v) for v in again} & {split_key(v) for v in first}


def test_a_small_constant_space_gives_fewer_variants_and_stops():
    task = next(
        t
        for t in builtin_tasks("code", split="train", n=60)
        if t.metadata["template"] == "power_sum"
    )
    found = variants(task, 10, random.Random(0))
    # p is 1, 2 or 3: at most the two other values, and only those in the train split
    assert 1 <= len(found) <= 2
    assert len({split_key(v) for v in found} | {split_key(task)}) == len(found) + 1


def test_only_builtin_tasks_can_vary():
    custom = Task(id="c1", prompt="What is the capital of France?", answer="Paris")
    unknown = Task(
        id="c2", prompt="Write f.", kind="code", suite="code", metadata={"template": "nope"}
    )
    wrong_level = builtin_tasks("code", split="train", n=1)[0].model_copy(update={"difficulty": 4})
    assert not any(can_vary(t) for t in (custom, unknown, wrong_level))
    with pytest.raises(ValueError, match="cannot make variants of task 'c1'"):
        variants(custom, 2, random.Random(0))
    assert variants(builtin_tasks("strings", split="train", n=1)[0], 0, random.Random(0)) == []


def test_make_template_draws_that_template_and_rejects_unknown_names():
    task = code.make_template("caesar", random.Random(0))
    assert task.metadata["template"] == "caesar" and task.difficulty == 5
    with pytest.raises(ValueError, match="no code template 'nope'"):
        code.make_template("nope", random.Random(0))

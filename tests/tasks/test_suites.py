"""Built-in suites: fixed disjoint splits, spread over levels, references that pass."""

import pytest

from selfimprove.config import TasksConfig
from selfimprove.sandbox import SandboxPool
from selfimprove.tasks import SUITES, Grader, builtin_tasks, check_answer, load_task_set, split_of
from selfimprove.tasks.suite import split_key


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_splits_are_disjoint_stable_and_cover_every_level(suite):
    heldout = builtin_tasks(suite, split="heldout", n=100)
    assert [t.id for t in heldout] == [
        t.id for t in builtin_tasks(suite, split="heldout", n=100, seed=7)
    ]
    train_a = builtin_tasks(suite, split="train", n=150, seed=0)
    train_b = builtin_tasks(suite, split="train", n=150, seed=1)
    assert [t.id for t in train_a] != [t.id for t in train_b]  # fresh training draws
    heldout_prompts = {t.prompt for t in heldout}
    assert not heldout_prompts & {t.prompt for t in train_a + train_b}
    assert len(heldout_prompts) == 100 and len({t.id for t in heldout}) == 100
    assert {t.difficulty for t in heldout} == {1, 2, 3, 4, 5}
    assert all(split_of(split_key(t)) == "heldout" and t.suite == suite for t in heldout)
    assert not {split_key(t) for t in heldout} & {split_key(t) for t in train_a + train_b}


@pytest.mark.parametrize("suite", ["arithmetic", "compare", "strings"])
def test_reference_answers_verify_and_a_wrong_one_does_not(suite):
    for task in builtin_tasks(suite, split="heldout", n=50):
        assert check_answer(task, task.answer).passed, task
        assert check_answer(task, f"The answer is {task.answer}.").passed, task
        assert not check_answer(task, "I don't know").passed


def test_code_references_pass_their_tests_in_the_sandbox():
    tasks = builtin_tasks("code", split="heldout", n=100) + builtin_tasks(
        "code", split="train", n=60
    )
    with SandboxPool() as pool:
        verdicts = Grader(pool).grade(tasks, [f"```python\n{t.reference}```" for t in tasks])
    failed = [(t.id, v.reason) for t, v in zip(tasks, verdicts, strict=True) if not v.passed]
    assert not failed
    assert {t.metadata["template"] for t in tasks} >= {"fizz_word", "caesar", "scale_list"}


def test_unknown_suite_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown task suite 'algebra'.*arithmetic"):
        builtin_tasks("algebra", split="train", n=1)


def test_task_set_from_config_merges_files(tmp_path):
    path = tmp_path / "extra.jsonl"
    path.write_text('{"id": "x1", "prompt": "What is 1+1?", "answer": "2", "split": "heldout"}\n')
    task_set = load_task_set(
        TasksConfig(suites=["compare"], train_per_suite=10, heldout_per_suite=5, files=[path])
    )
    assert len(task_set.train) == 10 and len(task_set.heldout) == 6
    assert task_set.suites == ["compare", "extra"]


def test_guard_tasks_follow_the_scored_held_out_tasks_and_never_overlap(tmp_path):
    extra = tmp_path / "guard.jsonl"
    extra.write_text(builtin_tasks("compare", split="train", n=2)[0].model_dump_json() + "\n")
    config = TasksConfig(
        suites=["strings"], heldout_per_suite=5, guard_per_suite=3, guard_files=[extra]
    )
    tasks = load_task_set(config)
    scored = builtin_tasks("strings", split="heldout", n=8)
    assert [t.id for t in tasks.heldout] == [t.id for t in scored[:5]]
    assert [t.id for t in tasks.guard[:3]] == [t.id for t in scored[5:]]
    assert len(tasks.guard) == 4 and tasks.guard[3].suite == "compare"
    assert not {t.id for t in tasks.heldout} & {t.id for t in tasks.guard}

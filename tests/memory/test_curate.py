"""Curation of a round's training data: confidence, near-copies within a task, cap; task leaks."""

from __future__ import annotations

import pytest

from selfimprove.memory.curate import CurationReport, curate, example_confidence
from selfimprove.memory.decontaminate import (
    ContaminationError,
    check_tasks_decontaminated,
    find_task_leaks,
)
from selfimprove.tasks import builtin_tasks
from selfimprove.types import Example, Task

ARITH = Task(id="arith-1", prompt="What is 4 + 2? Answer with just the number.", answer="6")
ARITH2 = Task(id="arith-2", prompt="What is 3 + 3? Answer with just the number.", answer="6")
COMPARE = Task(
    id="cmp-1",
    prompt="Which number is larger: 3 or 5? Answer with just the number.",
    answer="5",
    metadata={"match": "choice", "choices": ["3", "5"]},
)
CODE = Task(
    id="code-1",
    kind="code",
    prompt="Write a Python function `subtract_from_all(xs)` that subtracts 1 from every number.",
    tests="assert subtract_from_all([1, 5]) == [0, 4]",
    entry_point="subtract_from_all",
)
CODE2 = CODE.model_copy(update={"id": "code-2"})
TASKS = {t.id: t for t in (ARITH, ARITH2, COMPARE, CODE, CODE2)}
SOLUTION = "def subtract_from_all(xs):\n    return [x - 1 for x in xs]"


def _attempt(task: Task, text: str, passed: bool, count: int = 1, **meta) -> Example:
    """A stored sampled attempt, as collect_examples builds it (identical samples: one, counted)."""
    metadata = {"split": "train", "finish_reason": "stop", "count": count} | meta
    return Example(
        kind="attempt", prompt=task.prompt, completion=text, task_id=task.id,
        passed=passed, metadata=metadata,
    )  # fmt: skip


def _positive(attempt: Example, **update) -> Example:
    return attempt.model_copy(update={"kind": "positive", "parent_id": attempt.id, **update})


def _pair(chosen: Example, rejected: str, error_type: str = "sampled", agent: str = "student"):
    return Example(
        kind="pair", prompt=chosen.prompt, completion=chosen.completion, rejected=rejected,
        task_id=chosen.task_id, agent=agent, parent_id=chosen.id, error_type=error_type,
    )  # fmt: skip


def _fix(task: Task, text: str, turn: int) -> tuple[Example, Example]:
    """A self-debug turn that passed (an attempt) and the positive made of it."""
    attempt = Example(
        kind="attempt", prompt=task.prompt, completion=text, task_id=task.id,
        agent="self_debug", passed=True, metadata={"turn": turn, "feedback": "wrong"},
    )  # fmt: skip
    return attempt, _positive(attempt)


def _added_up(report: CurationReport) -> bool:
    dropped = report.low_confidence + report.near_duplicates + report.over_cap
    kept = report.positives_kept + report.pairs_kept
    return report.positives_in + report.pairs_in == kept + dropped


def test_confidence_is_the_share_of_sampled_attempts_that_passed():
    right, wrong = _attempt(ARITH, "6", True, count=3), _attempt(ARITH, "7", False)
    review = _attempt(ARITH, "6?", False).model_copy(update={"agent": "self_review"})
    noise = [_attempt(ARITH2, "5", False, count=4), review]  # other task, not a sample
    assert example_confidence(_positive(right), [right], ARITH) == 1.0  # 4 of 4 as one attempt
    assert example_confidence(_positive(right), [right, wrong, right, *noise], ARITH) == 0.75
    assert example_confidence(_positive(right), [], ARITH) == 1.0  # nothing to doubt it


def test_multiple_choice_passes_are_corrected_for_chance():
    right, wrong = _attempt(COMPARE, "5", True, count=2), _attempt(COMPARE, "3", False, count=2)
    assert example_confidence(_positive(right), [right, wrong], COMPARE) == 0.0  # 2/4: a coin
    assert example_confidence(_positive(right), [right, wrong], None) == 0.5  # no task: raw
    three = COMPARE.model_copy(update={"metadata": {"match": "choice", "choices": ["3", "5", "4"]}})
    assert example_confidence(_positive(right), [right, wrong], three) == pytest.approx(0.25)
    most = right.model_copy(update={"metadata": right.metadata | {"count": 3}})
    assert example_confidence(_positive(most), [most, wrong], COMPARE) == pytest.approx(0.2)


def test_truncated_answers_get_no_confidence():
    cut = _attempt(ARITH, "6, because 4 + 2 = 6 and", True, finish_reason="length")
    whole = _attempt(ARITH, "6", True, count=3)
    assert example_confidence(_positive(cut), [cut, whole], ARITH) == 0.0
    assert example_confidence(_positive(whole), [cut, whole], ARITH) == 1.0
    assert example_confidence(_pair(_positive(cut), "7"), [cut, whole], ARITH) == 0.0


def test_self_debug_fixes_and_pairs_built_on_them():
    failed = [_attempt(ARITH, "7", False, count=4)]
    debug, fix = _fix(ARITH, "6", turn=1)
    assert example_confidence(fix, [*failed, debug], ARITH) == 1.0
    debug2, fix2 = _fix(ARITH, "6", turn=2)
    assert example_confidence(fix2, [*failed, debug2], ARITH) == 0.5  # one pass in two turns
    # an injected error built on the fix is as good as the fix, not the 0 of the samples
    injected = _pair(fix2, "8", error_type="off_by_one", agent="inject")
    assert example_confidence(injected, [*failed, debug2], ARITH) == 0.5
    fixed_pair = _pair(fix2, "7", error_type="self_debug", agent="self_debug")
    assert example_confidence(fixed_pair, [*failed, debug2], ARITH) == 0.5
    cmp_debug, cmp_fix = _fix(COMPARE, "5", turn=1)  # told "3" is wrong: a flip, no evidence
    assert example_confidence(cmp_fix, [_attempt(COMPARE, "3", False), cmp_debug], COMPARE) == 0
    code_debug, code_fix = _fix(CODE, SOLUTION, turn=2)  # unit tests passed
    assert example_confidence(code_fix, [_attempt(CODE, "pass", False), code_debug], CODE) == 1.0


def test_curate_drops_low_confidence_positives_and_their_pairs():
    cmp_right, cmp_wrong = _attempt(COMPARE, "5", True, 2), _attempt(COMPARE, "3", False, 2)
    add_right, add_wrong = _attempt(ARITH, "6", True, 3), _attempt(ARITH, "7", False)
    attempts = [cmp_right, cmp_wrong, add_right, add_wrong]
    positives = [_positive(cmp_right), _positive(add_right)]
    pairs = [_pair(positives[0], "3"), _pair(positives[1], "7")]
    kept, kept_pairs, report = curate(positives, pairs, attempts, TASKS)
    assert kept == [positives[1]] and kept_pairs == [pairs[1]]
    assert (report.low_confidence, report.positives_kept, report.pairs_kept) == (2, 1, 1)
    assert _added_up(report)
    assert report.counts()["curate/low_confidence"] == 2 and len(report.counts()) == 7
    strict = curate(positives, pairs, attempts, TASKS, min_confidence=0.8)
    assert strict[:2] == ([], [])
    everything = curate(positives, pairs, attempts, TASKS, min_confidence=0.0)
    assert everything[:2] == (positives, pairs) and everything[2].low_confidence == 0


def _code_round(task: Task, texts: list[str]) -> tuple[list[Example], list[Example]]:
    attempts = [_attempt(task, text, True) for text in texts]
    return attempts, [_positive(a) for a in attempts]


VARIANTS = [
    SOLUTION,
    "def subtract_from_all(xs):\n    # take one off each number\n    return [x - 1 for x in xs]",
    "def subtract_from_all(xs):\n  return [x-1 for x in xs]",  # shortest of the group
    "def subtract_from_all(numbers):\n    return [n - 1 for n in numbers]",
    "def subtract_from_all(xs):\n    result = [x - 1 for x in xs]\n    return result",
    "def subtract_from_all(xs):\n    out = []\n    for x in xs:\n        out.append(x - 1)\n"
    "    return out",  # another algorithm
]


def test_near_copies_within_a_task_are_merged_with_minilm(minilm):
    attempts, positives = _code_round(CODE, VARIANTS)
    other_attempts, other = _code_round(CODE2, [SOLUTION])  # same text, another task: kept
    kept, _, report = curate(
        positives + other, [], attempts + other_attempts, TASKS, embeddings=minilm
    )
    assert kept == [positives[2], positives[5], other[0]]
    assert report.near_duplicates == 4 and _added_up(report)
    adds = [_attempt(ARITH, "6", True), _attempt(ARITH2, "6", True)]
    kept, _, _ = curate([_positive(a) for a in adds], [], adds, TASKS, embeddings=minilm)
    assert [e.task_id for e in kept] == ["arith-1", "arith-2"]


def test_without_embeddings_only_normalised_text_is_merged():
    attempts, positives = _code_round(CODE, VARIANTS)
    kept, _, report = curate(positives, [], attempts, TASKS)
    # comment, layout and variable names are canonicalised away; "result = ..." is not
    assert kept == [positives[2], positives[4], positives[5]] and report.near_duplicates == 3
    answers = [_attempt(ARITH, text, True) for text in ("6", " 6\n", "Six")]
    kept, _, _ = curate([_positive(a) for a in answers], [], answers, TASKS)
    assert [e.completion for e in kept] == ["6", "Six"]
    debug, fix = _fix(ARITH, "6", turn=1)  # and the same fix with its feedback in context
    leti = fix.model_copy(update={"parent_id": fix.id, "metadata": {"messages": "[]"}})
    assert curate([fix, leti], [], [debug], TASKS)[0] == [fix, leti]
    kept, _, report = curate(positives, [], attempts, TASKS, near_duplicate=None)
    assert kept == positives and report.near_duplicates == 0


def test_pairs_are_near_copies_only_when_they_reject_the_same_answer(minilm):
    attempts, positives = _code_round(CODE, [SOLUTION, VARIANTS[4]])  # near-copies by MiniLM
    # one-token edits of one answer: MiniLM puts them at cosine > 0.97, yet they differ
    edits = [SOLUTION.replace("x - 1", "x + 1"), SOLUTION.replace("x - 1", "x - 2")]
    injected = [_pair(positives[0], e, "swap_operator", "inject") for e in edits]
    wrong = "def subtract_from_all(xs):\n    return xs"
    sampled = [_pair(p, wrong) for p in positives]  # near-copy chosen, same rejected
    pairs = [*injected, *sampled]
    _, kept, report = curate([], pairs, attempts, TASKS, embeddings=minilm)
    assert kept == pairs[:3] and report.near_duplicates == 1 and _added_up(report)


def test_higher_confidence_wins_a_near_copy_group(minilm):
    cut = _attempt(ARITH, "6", True, finish_reason="length")
    whole = _attempt(ARITH, "6.", True)
    pos = [_positive(cut), _positive(whole)]
    kept, _, report = curate(pos, [], [cut, whole], TASKS, min_confidence=0.0)
    assert kept == pos  # "6" and "6." are other text without embeddings
    kept, _, report = curate(
        pos, [], [cut, whole], TASKS, min_confidence=0.0, embeddings=minilm, near_duplicate=0.9
    )
    assert kept == [pos[1]] and report.near_duplicates == 1  # the shorter one was truncated


def test_max_per_task_keeps_the_preferred_examples_of_each_task():
    attempts, positives = _code_round(CODE, [VARIANTS[5], VARIANTS[4], SOLUTION])
    other_attempts, other = _code_round(CODE2, [SOLUTION])
    kept, _, report = curate(
        positives + other, [], attempts + other_attempts, TASKS, max_per_task=2
    )
    assert kept == [positives[1], positives[2], other[0]]  # the longest of code-1 goes
    assert report.over_cap == 1 and _added_up(report)


def test_bad_arguments_are_refused():
    for bad in ({"min_confidence": 1.5}, {"near_duplicate": 2.0}, {"max_per_task": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            curate([], [], [], **bad)


def test_generated_tasks_that_copy_a_heldout_task_are_refused():
    heldout = builtin_tasks("arithmetic", split="heldout", n=20) + builtin_tasks(
        "code", split="heldout", n=10
    )
    copied = heldout[3].model_copy(update={"id": "gen-copy", "split": "train"})
    reworded = heldout[-1].model_copy(  # same template and constants, new wording
        update={"id": "gen-reworded", "prompt": "Implement this: " + heldout[-1].prompt[::-1]}
    )
    fresh = builtin_tasks("arithmetic", split="train", n=20) + builtin_tasks(
        "code", split="train", n=10
    )
    assert find_task_leaks([*fresh, copied, reworded], heldout) == [
        ("gen-copy", heldout[3].id),
        ("gen-reworded", heldout[-1].id),
    ]
    with pytest.raises(ContaminationError, match=r"2 generated task\(s\) .*'gen-copy'") as error:
        check_tasks_decontaminated([*fresh, copied, reworded], heldout)
    assert heldout[3].id in str(error.value) and error.value.leaks[0][0] == "gen-copy"
    check_tasks_decontaminated(fresh, heldout)  # fresh train tasks pass


def test_a_code_answer_that_passed_its_tests_is_confident_however_rarely_sampled():
    solved = _attempt(CODE, SOLUTION, True)
    attempts = [solved, _attempt(CODE, "def f(): pass", False, count=3)]
    assert example_confidence(_positive(solved), attempts, CODE) == 1.0
    # the same one-in-four agreement on a numeric answer task is only 0.25
    right = _attempt(ARITH, "6", True)
    attempts = [right, _attempt(ARITH, "7", False, count=3)]
    assert example_confidence(_positive(right), attempts, ARITH) == pytest.approx(0.25)

"""The promotion gate on evaluations built from a scripted model."""

import pytest

from selfimprove.eval import evaluate
from selfimprove.eval.gate import decide, flips
from selfimprove.tasks import Grader, builtin_tasks
from selfimprove.testing import FakeChatModel

TASKS = builtin_tasks("arithmetic", split="heldout", n=10)


def _report(correct_ids):
    answers = {t.prompt: (t.answer if t.id in correct_ids else "no idea") for t in TASKS}
    return evaluate(FakeChatModel(answers), TASKS, Grader(), show_progress=False)


def test_evaluate_scores_a_scripted_model():
    report = _report({t.id for t in TASKS[:4]})
    assert report.pass_at_1 == pytest.approx(0.4)
    assert report.suites["arithmetic"].n == 10
    assert [r.correct for r in report.results] == [1] * 4 + [0] * 6


def test_better_candidate_is_promoted_with_flips_listed():
    incumbent = _report({t.id for t in TASKS[:4]})
    candidate = _report({t.id for t in TASKS[1:7]})
    decision = decide(incumbent, candidate, margin=0.1)
    assert decision.promote and decision.heldout_delta == pytest.approx(0.2)
    assert decision.negative_flips == [TASKS[0].id]
    assert sorted(decision.positive_flips) == sorted(t.id for t in TASKS[4:7])


def test_gate_rejects_equal_worse_or_too_many_flips():
    incumbent = _report({t.id for t in TASKS[:5]})
    assert not decide(incumbent, _report({t.id for t in TASKS[:5]})).promote  # equal
    assert not decide(incumbent, _report({t.id for t in TASKS[:3]})).promote  # worse
    swapped = _report({t.id for t in TASKS[3:9]})  # +1 task overall but 3 negative flips
    assert decide(incumbent, swapped).promote
    rejected = decide(incumbent, swapped, max_negative_flips=2)
    assert not rejected.promote and "3 negative flips" in rejected.reasons[-1]
    assert not decide(incumbent, swapped, margin=0.15).promote


def test_guard_regression_blocks_promotion():
    incumbent, candidate = _report({t.id for t in TASKS[:2]}), _report({t.id for t in TASKS[:6]})
    guard_ok, guard_bad = _report({t.id for t in TASKS[:5]}), _report({t.id for t in TASKS[:4]})
    decision = decide(incumbent, candidate, guard_incumbent=guard_ok, guard_candidate=guard_bad)
    assert not decision.promote and "guard set regressed" in decision.reasons[-1]
    assert decide(incumbent, candidate, guard_incumbent=guard_ok, guard_candidate=guard_ok).promote


def test_gate_refuses_mismatched_evaluations_and_negative_margin():
    other = evaluate(FakeChatModel("1"), TASKS[:3], Grader(), show_progress=False)
    with pytest.raises(ValueError, match="different tasks"):
        flips(_report(set()), other)
    with pytest.raises(ValueError, match="margin"):
        decide(_report(set()), _report(set()), margin=-0.1)


def test_suite_regression_blocks_promotion_when_a_drop_limit_is_set():
    compare = builtin_tasks("compare", split="heldout", n=10)
    tasks = TASKS + compare

    def report(arith, comp):
        right = {t.prompt: t.answer for t in TASKS[:arith] + compare[:comp]}
        model = FakeChatModel(right, default="no idea")
        return evaluate(model, tasks, Grader(), show_progress=False)

    incumbent, candidate = report(2, 6), report(9, 4)  # overall 8 -> 13, compare 0.6 -> 0.4
    assert decide(incumbent, candidate).promote
    assert decide(incumbent, candidate, max_suite_drop=0.2).promote
    blocked = decide(incumbent, candidate, max_suite_drop=0.1)
    assert not blocked.promote
    assert "suite 'compare' regressed 0.600 -> 0.400" in blocked.reasons[-1]

"""Budgets stop a run at a round boundary; health signals pause it and say why."""

import math
import time

from selfimprove.config import LoopConfig
from selfimprove.eval.report import RoundRecord
from selfimprove.health import budget_exhausted, unhealthy
from selfimprove.runs import Run
from selfimprove.testing.runs import start_scripted_run


def _round(
    n,
    *,
    promoted=True,
    loss=(1.0, 0.5),
    passed=10,
    samples=40,
    minutes=1.0,
    new=100,
    groups=(10, 4),
    usage=None,
):
    counts = {"samples": samples, "samples_passed": passed, "new": new}
    counts |= {"groups": groups[0], "groups_mixed": groups[1]}
    return RoundRecord(
        round=n,
        promoted=promoted,
        metrics={"heldout_pass_at_1": 0.5},
        counts=counts if n else {},
        train_loss=list(loss) if n else [],
        reasons=[],
        timings={"collect": minutes * 60},
        usage=usage or {},
    )


def test_budgets():
    rounds = [_round(0, minutes=0.5), _round(1, minutes=2.0), _round(2, minutes=1.0)]
    assert budget_exhausted(LoopConfig(), rounds) is None
    assert "the run took 3.5 min, at or over loop.max_minutes 3" in budget_exhausted(
        LoopConfig(max_minutes=3), rounds
    )
    assert budget_exhausted(LoopConfig(max_minutes=4), rounds) is None
    assert "round 2 took 1.0 min" in budget_exhausted(LoopConfig(max_round_minutes=1), rounds)
    assert budget_exhausted(LoopConfig(max_round_minutes=1.5), rounds) is None  # round 2 alone
    assert "stored 200 examples" in budget_exhausted(LoopConfig(max_examples=150), rounds)
    assert budget_exhausted(LoopConfig(max_examples=201), rounds) is None
    assert "round 2 stored 100 examples, at or over loop.max_round_examples 100" in (
        budget_exhausted(LoopConfig(max_round_examples=100), rounds)
    )


def test_token_and_cost_budgets_add_up_every_round_including_the_baseline():
    spent = {"prompt_tokens": 600_000, "completion_tokens": 400_000, "cost_usd": 0.75}
    rounds = [_round(0, usage=spent), _round(1, usage=spent), _round(2, usage={})]
    assert budget_exhausted(LoopConfig(max_tokens=2_000_001), rounds) is None
    assert "the run used 2,000,000 model tokens, at or over loop.max_tokens 2000000" in (
        budget_exhausted(LoopConfig(max_tokens=2_000_000), rounds)
    )
    assert "the run spent $1.50 on model calls" in budget_exhausted(
        LoopConfig(max_cost_usd=1.5), rounds
    )
    assert budget_exhausted(LoopConfig(max_cost_usd=1.51), rounds) is None
    # a per-round cap looks at the last round only (round 2 spent nothing)
    assert budget_exhausted(LoopConfig(max_round_tokens=1, max_round_cost_usd=0.01), rounds) is None
    assert "round 1 used 1,000,000 model tokens" in budget_exhausted(
        LoopConfig(max_round_tokens=1_000_000), rounds[:2]
    )
    assert "loop.max_round_cost_usd 0.5" in budget_exhausted(
        LoopConfig(max_round_cost_usd=0.5), rounds[:2]
    )


def test_health_signals():
    loop = LoopConfig()
    fine = [_round(0), _round(1), _round(2, passed=6)]
    assert unhealthy(loop, fine) is None
    collapsed = [_round(0), _round(1, passed=10), _round(2, passed=1)]
    assert "pass rate collapsed from 25.0% to 2.5%" in unhealthy(loop, collapsed)
    assert unhealthy(LoopConfig(health_checks=False), collapsed) is None
    low_all_along = [_round(0), _round(1, passed=1), _round(2, passed=0)]
    assert unhealthy(loop, low_all_along) is None  # below 5% already: nothing collapsed
    assert "not finite" in unhealthy(loop, [_round(0), _round(1, loss=(1.0, math.nan))])
    assert "diverged" in unhealthy(loop, [_round(0), _round(1, loss=(0.5, 0.6, 2.0))])
    rejected = [_round(0), *(_round(n, promoted=False) for n in (1, 2, 3))]
    assert "3 rounds in a row were rejected" in unhealthy(loop, rejected)
    assert unhealthy(loop, [*rejected[:3], _round(3)]) is None


def test_rounds_without_contrast_pause_the_loop():
    loop = LoopConfig()
    uniform = [_round(0), _round(1, groups=(12, 0))]
    assert "only 0 of 12 tasks got both passing and failing samples" in unhealthy(loop, uniform)
    assert unhealthy(loop, [_round(0), _round(1, groups=(12, 1))]) is None
    assert unhealthy(loop, [_round(0), _round(1, groups=(7, 0))]) is None  # too few to tell
    assert unhealthy(loop, [_round(0), _round(1, groups=(0, 0))]) is None  # one sample per task
    assert "only 2 of 12" in unhealthy(
        LoopConfig(health_min_mixed=0.2), [_round(0), _round(1, groups=(12, 2))]
    )


def _until(run, predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate(status := run.status()):
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    return status


def test_a_spent_budget_stops_the_run_at_a_round_boundary(tmp_path):
    start_scripted_run(tmp_path, rounds=3, max_examples=1).wait(30)
    run = Run(tmp_path)
    assert [r.round for r in run.rounds()] == [0, 1]
    assert run.status().state == "stopped"
    (reason,) = [e.data["reason"] for e in run.events(kinds={"budget_exhausted"})]
    assert "examples, at or over loop.max_examples 1" in reason
    # resumed with the same cap it stops at once; with a larger one it goes on
    start_scripted_run(tmp_path, rounds=3, max_examples=1, resume=True).wait(30)
    assert [r.round for r in run.rounds()] == [0, 1]
    start_scripted_run(tmp_path, rounds=3, resume=True).wait(30)
    assert [r.round for r in run.rounds()] == [0, 1, 2, 3]


def test_a_health_signal_pauses_the_run_until_the_operator_resumes_it(tmp_path):
    handle = start_scripted_run(tmp_path, rounds=3, health_max_rejections=1)
    run = Run(tmp_path)
    status = _until(run, lambda s: s.state == "paused")  # round 2 is rejected
    assert "1 rounds in a row were rejected" in status.control.pause_reason
    assert [r.round for r in run.rounds()] == [0, 1, 2]
    assert [e.kind for e in run.events(kinds={"health", "paused"})] == ["health", "paused"]
    run.resume()
    handle.wait(30)
    assert [r.round for r in run.rounds()] == [0, 1, 2, 3]
    assert run.status().state == "finished" and run.control.read().pause_reason is None


def test_a_token_budget_stops_the_run_after_the_round_that_spent_it(tmp_path):
    start_scripted_run(tmp_path, rounds=3, max_round_tokens=1).wait(30)
    run = Run(tmp_path)
    rounds = run.rounds()
    assert [r.round for r in rounds] == [0, 1] and run.status().state == "stopped"
    spent = rounds[1].usage["prompt_tokens"] + rounds[1].usage["completion_tokens"]
    (reason,) = [e.data["reason"] for e in run.events(kinds={"budget_exhausted"})]
    assert f"round 1 used {spent:,.0f} model tokens, at or over loop.max_round_tokens 1" in reason

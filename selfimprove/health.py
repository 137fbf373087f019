"""Budgets and health signals, checked by the loop at every round boundary.

    reason = budget_exhausted(config.loop, rounds)   # stop cleanly, state saved
    reason = unhealthy(config.loop, rounds)          # pause and tell the operator why

``rounds`` are the report's ``RoundRecord``s (round 0 the baseline). Budgets
(``loop.max_minutes``, ``max_round_minutes``, ``max_examples``) stop the run;
raising the cap (config or ``Run.set_budget``) and resuming continues it. Health
signals pause it (``loop.health_checks``): the operator looks, then resumes
(console, ``/resume``, ``POST /api/control/resume``) or stops. They are:

- the sample pass rate collapsing: below ``health_collapse`` times the last
  round's, when that was at least 5% (the student stopped producing usable data);
- a training loss that is NaN or infinite, or ends above three times where it
  started (the optimizer diverged);
- ``health_max_rejections`` rounds rejected by the gate in a row (the loop keeps
  paying for rounds that do not help).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from selfimprove.config import LoopConfig
from selfimprove.eval.report import RoundRecord

MIN_RATE_FOR_COLLAPSE = 0.05


def budget_exhausted(loop: LoopConfig, rounds: Sequence[RoundRecord]) -> str | None:
    """Why the run must stop now, or None."""
    minutes = sum(sum(r.timings.values()) for r in rounds) / 60
    if loop.max_minutes is not None and minutes >= loop.max_minutes:
        return f"the run's rounds took {minutes:.1f} min, at or over loop.max_minutes {loop.max_minutes:g}"
    last = rounds[-1] if len(rounds) > 1 else None
    if last is not None and loop.max_round_minutes is not None:
        took = sum(last.timings.values()) / 60
        if took >= loop.max_round_minutes:
            return (
                f"round {last.round} took {took:.1f} min, at or over "
                f"loop.max_round_minutes {loop.max_round_minutes:g}"
            )
    stored = sum(r.counts.get("new", 0) for r in rounds)
    if loop.max_examples is not None and stored >= loop.max_examples:
        return f"{stored} examples stored, at or over loop.max_examples {loop.max_examples}"
    return None


def unhealthy(loop: LoopConfig, rounds: Sequence[RoundRecord]) -> str | None:
    """Why the loop should pause for the operator after its last round, or None."""
    if not loop.health_checks or len(rounds) < 2:
        return None
    last = rounds[-1]
    loss = last.train_loss
    if any(not math.isfinite(x) for x in loss):
        return f"round {last.round}: the training loss is not finite ({loss[-5:]})"
    if len(loss) >= 2 and loss[-1] > 3 * loss[0]:
        return f"round {last.round}: the training loss diverged ({loss[0]:.3f} -> {loss[-1]:.3f})"
    rates = [_pass_rate(r) for r in rounds[1:]]
    if len(rates) >= 2 and rates[-2] is not None and rates[-1] is not None:
        before, now = rates[-2], rates[-1]
        if before >= MIN_RATE_FOR_COLLAPSE and now < loop.health_collapse * before:
            return (
                f"round {last.round}: the sample pass rate collapsed from {before:.1%} to "
                f"{now:.1%}; look at its failures before going on"
            )
    streak = 0
    for r in reversed(rounds[1:]):
        if r.promoted:
            break
        streak += 1
    if streak >= loop.health_max_rejections:
        return (
            f"{streak} rounds in a row were rejected by the gate (loop.health_max_rejections "
            f"{loop.health_max_rejections}); the loop is spending compute without improving"
        )
    return None


def _pass_rate(record: RoundRecord) -> float | None:
    samples = record.counts.get("samples")
    return record.counts.get("samples_passed", 0) / samples if samples else None

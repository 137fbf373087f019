"""Budgets and health signals, checked by the loop at every round boundary.

    reason = budget_exhausted(config.loop, rounds)   # stop cleanly, state saved
    reason = unhealthy(config.loop, rounds)          # pause and tell the operator why

``rounds`` are the report's ``RoundRecord``s (round 0 the baseline). Budgets stop
the run; raising the cap in the config and resuming (``--resume``) continues it.
Each has a per-run cap (``loop.max_<what>``, summed over every round including the
baseline's evaluation) and a per-round one (``loop.max_round_<what>``, the last
round alone):

- ``minutes``: wall time of the rounds' stages;
- ``examples``: examples stored;
- ``tokens``: prompt plus completion tokens of every model call (student,
  teacher, agents), from each backend's ``Usage``;
- ``cost_usd``: what litellm priced those calls at (local models and unmapped
  models add 0, so it is a lower bound when calls were unpriced).

Caps are checked at round boundaries, so a round that starts under a cap finishes
even if it goes over: a per-round cap bounds the run to one round past it.

Health signals pause it (``loop.health_checks``): the operator looks, then resumes
(console, ``/resume``, ``POST /api/control/resume``) or stops. They are:

- the sample pass rate collapsing: below ``health_collapse`` times the last
  round's, when that was at least 5% (the student stopped producing usable data);
- no learning signal: at most ``health_min_mixed`` of the round's tasks (at least
  8 sampled twice or more) got both passing and failing samples, so every task's
  samples scored the same (tasks too hard or too easy, or greedy sampling);
- a training loss that is NaN or infinite, or ends above three times where it
  started (the optimizer diverged);
- ``health_max_rejections`` rounds rejected by the gate in a row (the loop keeps
  paying for rounds that do not help).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from selfimprove.config import LoopConfig
from selfimprove.eval.report import RoundRecord

MIN_RATE_FOR_COLLAPSE = 0.05
MIN_GROUPS_FOR_SIGNAL = 8

# What each budget measures in one round, and how to say an amount of it.
_MEASURES: dict[str, tuple[Callable[[RoundRecord], float], str]] = {
    "minutes": (lambda r: sum(r.timings.values()) / 60, "took {:.1f} min"),
    "examples": (lambda r: r.counts.get("new", 0), "stored {:.0f} examples"),
    "tokens": (
        lambda r: r.usage.get("prompt_tokens", 0) + r.usage.get("completion_tokens", 0),
        "used {:,.0f} model tokens",
    ),
    "cost_usd": (lambda r: r.usage.get("cost_usd", 0.0), "spent ${:.2f} on model calls"),
}


def budget_exhausted(loop: LoopConfig, rounds: Sequence[RoundRecord]) -> str | None:
    """Why the run must stop now, or None."""
    for what, (measure, shown) in _MEASURES.items():
        cap = getattr(loop, f"max_{what}")
        spent = sum(measure(r) for r in rounds)
        if cap is not None and spent >= cap:
            return f"the run {shown.format(spent)}, at or over loop.max_{what} {_num(cap)}"
        cap = getattr(loop, f"max_round_{what}")
        if cap is not None and len(rounds) > 1 and (spent := measure(rounds[-1])) >= cap:
            return (
                f"round {rounds[-1].round} {shown.format(spent)}, at or over "
                f"loop.max_round_{what} {_num(cap)}"
            )
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
    groups, mixed = last.counts.get("groups", 0), last.counts.get("groups_mixed", 0)
    if groups >= MIN_GROUPS_FOR_SIGNAL and mixed / groups <= loop.health_min_mixed:
        solved = last.counts.get("tasks_solved", 0)
        return (
            f"round {last.round}: only {mixed} of {groups} tasks got both passing and failing "
            f"samples ({solved} solved at all), so there is little to learn from; make the "
            "tasks easier or harder, or raise the sampling temperature"
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


def _num(cap: float) -> str:
    return f"{cap:g}" if isinstance(cap, float) else str(cap)


def _pass_rate(record: RoundRecord) -> float | None:
    samples = record.counts.get("samples")
    return record.counts.get("samples_passed", 0) / samples if samples else None

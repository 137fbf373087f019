"""The promotion gate: a candidate model replaces the incumbent only if it is better.

``decide(incumbent, candidate, ...)`` compares two evaluations of the same
held-out tasks (and optionally of a guard set) and returns a ``GateDecision``
with every reason spelled out. Promotion needs all of:

- held-out pass@1 up by more than ``margin`` (absolute, e.g. 0.02 = 2 points);
- no more negative flips (tasks the incumbent solved and the candidate does not)
  than ``max_negative_flips`` allows, when set;
- the guard set's pass@1 not down by more than ``guard_tolerance``;
- no suite's pass@1 down by more than ``max_suite_drop``, when set (an overall
  gain must not hide a suite that got worse).

A regression is never promoted, whatever the margin.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from selfimprove.eval.evaluate import EvalReport


class GateDecision(BaseModel):
    """What the gate decided and why."""

    promote: bool
    reasons: list[str]
    heldout_before: float
    heldout_after: float
    negative_flips: list[str] = Field(default_factory=list)
    positive_flips: list[str] = Field(default_factory=list)
    guard_before: float | None = None
    guard_after: float | None = None

    @property
    def heldout_delta(self) -> float:
        return self.heldout_after - self.heldout_before


def solved(report: EvalReport) -> dict[str, bool]:
    """Task id → whether the first sample passed (greedy pass@1 per task)."""
    return {r.task_id: bool(r.attempts) and r.attempts[0].verdict.passed for r in report.results}


def flips(before: EvalReport, after: EvalReport) -> tuple[list[str], list[str]]:
    """``(negative, positive)`` flips between two evaluations of the same tasks."""
    old, new = solved(before), solved(after)
    if old.keys() != new.keys():
        missing = sorted(old.keys() ^ new.keys())[:5]
        raise ValueError(f"the two evaluations cover different tasks, e.g. {missing!r}")
    negative = sorted(t for t in old if old[t] and not new[t])
    positive = sorted(t for t in old if new[t] and not old[t])
    return negative, positive


def decide(
    incumbent: EvalReport,
    candidate: EvalReport,
    *,
    margin: float = 0.0,
    max_negative_flips: int | None = None,
    guard_incumbent: EvalReport | None = None,
    guard_candidate: EvalReport | None = None,
    guard_tolerance: float = 0.0,
    max_suite_drop: float | None = None,
) -> GateDecision:
    """Promote ``candidate`` over ``incumbent`` only if it is better on every count."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0 (a regression is never promoted), got {margin!r}")
    if (guard_incumbent is None) != (guard_candidate is None):
        raise ValueError("give both guard evaluations or neither")
    negative, positive = flips(incumbent, candidate)
    before, after = incumbent.pass_at_1, candidate.pass_at_1
    reasons: list[str] = []
    promote = True
    if after - before > margin:
        reasons.append(f"held-out pass@1 {before:.3f} -> {after:.3f} (> margin {margin:.3f})")
    else:
        promote = False
        reasons.append(
            f"held-out pass@1 {before:.3f} -> {after:.3f} does not beat the margin {margin:.3f}"
        )
    if max_negative_flips is not None and len(negative) > max_negative_flips:
        promote = False
        reasons.append(f"{len(negative)} negative flips > allowed {max_negative_flips}")
    if max_suite_drop is not None:
        for name, old in incumbent.suites.items():
            new = candidate.suites.get(name)
            if new is not None and old.pass_at_1 - new.pass_at_1 > max_suite_drop:
                promote = False
                reasons.append(
                    f"suite {name!r} regressed {old.pass_at_1:.3f} -> {new.pass_at_1:.3f} "
                    f"(allowed drop {max_suite_drop:.3f})"
                )
    guard_before = guard_after = None
    if guard_incumbent is not None and guard_candidate is not None:
        guard_before, guard_after = guard_incumbent.pass_at_1, guard_candidate.pass_at_1
        if guard_before - guard_after > guard_tolerance:
            promote = False
            reasons.append(
                f"guard set regressed {guard_before:.3f} -> {guard_after:.3f} "
                f"(tolerance {guard_tolerance:.3f})"
            )
        else:
            reasons.append(f"guard set {guard_before:.3f} -> {guard_after:.3f}")
    return GateDecision(
        promote=promote,
        reasons=reasons,
        heldout_before=before,
        heldout_after=after,
        negative_flips=negative,
        positive_flips=positive,
        guard_before=guard_before,
        guard_after=guard_after,
    )

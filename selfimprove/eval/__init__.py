"""Held-out evaluation, metrics and the promotion gate."""

from selfimprove.eval.evaluate import (
    EvalReport,
    SuiteScore,
    TaskResult,
    evaluate,
    generate_for_tasks,
    generation_settings,
)
from selfimprove.eval.gate import GateDecision, decide
from selfimprove.eval.metrics import pass_at_k

__all__ = [
    "EvalReport",
    "GateDecision",
    "SuiteScore",
    "TaskResult",
    "decide",
    "evaluate",
    "generate_for_tasks",
    "generation_settings",
    "pass_at_k",
]

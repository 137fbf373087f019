"""Held-out evaluation and metrics."""

from selfimprove.eval.evaluate import (
    EvalReport,
    SuiteScore,
    TaskResult,
    evaluate,
    generation_settings,
)
from selfimprove.eval.metrics import pass_at_k

__all__ = ["EvalReport", "SuiteScore", "TaskResult", "evaluate", "generation_settings", "pass_at_k"]

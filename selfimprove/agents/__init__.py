"""Agents: typed calls with their prompts in ``agents/prompts/``; one agent per file.

- ``inject``: error injection (RISE): plant one verified error in a correct answer
  (operators in ``answer_errors`` and ``code_errors``).
- ``debug``: self-debugging (LeTI): fix failed answers from the verifier's feedback.

    from selfimprove.agents import inject_errors, self_debug
"""

from selfimprove.agents.debug import DebugTrajectory, DebugTurn, debug_counts, self_debug
from selfimprove.agents.inject import (
    OPERATORS,
    Injection,
    InjectionResult,
    inject_errors,
    inject_errors_batch,
    yields,
)

__all__ = [
    "OPERATORS",
    "DebugTrajectory",
    "DebugTurn",
    "Injection",
    "InjectionResult",
    "debug_counts",
    "inject_errors",
    "inject_errors_batch",
    "self_debug",
    "yields",
]

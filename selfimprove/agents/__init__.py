"""Agents: typed calls with their prompts in ``agents/prompts/``; one agent per file.

- ``critic``: structured critique (TIGERScore/DeCRIM): errors with location, type,
  severity; its agreement with the verifier is tracked (advice, not a verdict).
- ``debug``: self-debugging (LeTI): fix failed answers from the verifier's feedback.
- ``review``: feedback-free self-review, counting right→wrong and wrong→right.
- ``inject``: error injection (RISE): plant one verified error in a correct answer
  (operators in ``answer_errors`` and ``code_errors``); ``self_edit``: the LLM
  self-edit operator, a model plants one named error in a few tokens.
- ``workflows``: Agent Workflow Memory: induce reusable workflows from successes
  (stored by ``selfimprove.memory.workflows.WorkflowMemory``).
- ``augment``: failure-driven augmentation (LLM2LLM): new verified tasks near failures.

    from selfimprove.agents import critique, inject_errors, self_debug
"""

from selfimprove.agents.augment import AugmentResult, augment_failures
from selfimprove.agents.critic import (
    CriticIssue,
    Critique,
    critic_counts,
    critique,
    precision_recall,
)
from selfimprove.agents.debug import DebugTrajectory, DebugTurn, debug_counts, self_debug
from selfimprove.agents.inject import (
    OPERATORS,
    Injection,
    InjectionResult,
    inject_errors,
    inject_errors_batch,
    yields,
)
from selfimprove.agents.review import Review, review_counts, self_review
from selfimprove.agents.self_edit import SELF_EDIT_ERRORS, self_edit_errors
from selfimprove.agents.workflows import Workflow, induce_workflows, workflow_prompt

__all__ = [
    "OPERATORS",
    "SELF_EDIT_ERRORS",
    "AugmentResult",
    "CriticIssue",
    "Critique",
    "DebugTrajectory",
    "DebugTurn",
    "Injection",
    "InjectionResult",
    "Review",
    "Workflow",
    "augment_failures",
    "critic_counts",
    "critique",
    "debug_counts",
    "induce_workflows",
    "inject_errors",
    "inject_errors_batch",
    "precision_recall",
    "review_counts",
    "self_debug",
    "self_edit_errors",
    "self_review",
    "workflow_prompt",
    "yields",
]

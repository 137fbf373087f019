"""What an error-injection operator returns, and what the operators share.

An ``Injection`` is one edited copy of a correct answer: the edited text, the
operator that made it and a short description of the edit. ``reason`` is filled
in by ``selfimprove.agents.inject.inject_errors`` with the verifier's reason once
the edit is confirmed to fail.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict

from selfimprove.types import Task


class Injection(BaseModel):
    """One planted error.

    Attributes:
        text: the whole edited completion.
        operator: the operator's name (``"off_by_one"``, ``"change_value"`` ...).
        description: the edit in a few words (``"range(n) -> range(n + 1)"``).
        reason: why the verifier rejects the edited answer (empty until verified).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    operator: str
    description: str
    reason: str = ""


Operator = Callable[[Task, str, random.Random], Injection | None]
"""``(task, correct_completion, rng) -> Injection | None``; None when it does not apply."""

Edit = tuple[int, int, str]
"""Replace ``text[start:end]`` by the string."""


def splice(text: str, edits: list[Edit]) -> str:
    """``text`` with non-overlapping ``(start, end, new)`` edits applied."""
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text

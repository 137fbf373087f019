"""Shared nouns of selfimprove: tasks, completions, verdicts, examples.

Every subpackage speaks in these types; they are plain pydantic models so they
validate on the way in, serialize to JSON on the way out and carry no behaviour
beyond small derived properties.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Split = Literal["train", "heldout"]
TaskKind = Literal["answer", "code"]
FinishReason = Literal["stop", "length", "error"]
ExampleKind = Literal["attempt", "positive", "negative", "pair", "workflow", "critique"]
MetadataValue = str | int | float | bool


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Task(_Frozen):
    """One verifiable task.

    ``kind="answer"`` tasks are graded against ``answer`` (numeric or exact
    match, see ``selfimprove.tasks.verifiers``); ``kind="code"`` tasks run the
    candidate program against ``tests`` in the sandbox, HumanEval-style: the
    completion is appended to ``prompt`` unless it defines ``entry_point``
    itself, then ``tests`` run and, when ``entry_point`` is set,
    ``check(entry_point)`` is called.
    """

    id: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    kind: TaskKind = "answer"
    answer: str | None = None
    tests: str | None = None
    entry_point: str | None = None
    reference: str | None = None
    suite: str = "custom"
    split: Split = "train"
    difficulty: int = Field(default=1, ge=1, le=5)
    metadata: dict[str, Any] = Field(default_factory=dict)


class Completion(_Frozen):
    """One sampled model output."""

    text: str
    tokens: int = Field(ge=0)
    finish_reason: FinishReason = "stop"


class Verdict(_Frozen):
    """What a verifier says of one answer: pass/fail, a score in [0, 1], and why."""

    passed: bool
    score: float = Field(ge=0.0, le=1.0)
    reason: str

    @classmethod
    def ok(cls, reason: str = "ok") -> Verdict:
        return cls(passed=True, score=1.0, reason=reason)

    @classmethod
    def fail(cls, reason: str, score: float = 0.0) -> Verdict:
        return cls(passed=False, score=score, reason=reason)


class Attempt(_Frozen):
    """A completion of a task together with its verdict."""

    task_id: str
    completion: str
    verdict: Verdict


class Example(_Frozen):
    """A stored example with lineage.

    ``kind`` says what it is: a raw ``attempt``, a verified ``positive``, a
    failing ``negative``, a DPO ``pair`` (``completion`` is the chosen answer,
    ``rejected`` the other), an induced ``workflow`` or a ``critique`` of an
    attempt (its parent; advice, never training data). The id is a hash of the
    content and lineage, so adding the same example twice stores it once.
    """

    kind: ExampleKind
    prompt: str
    completion: str = ""
    rejected: str | None = None
    task_id: str | None = None
    round: int = Field(default=0, ge=0)
    agent: str = "student"
    model: str = ""
    parent_id: str | None = None
    passed: bool | None = None
    reason: str = ""
    error_type: str | None = None
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)

    @property
    def id(self) -> str:
        return content_id(
            self.kind,
            self.task_id,
            self.round,
            self.agent,
            self.parent_id,
            self.error_type,
            self.prompt,
            self.completion,
            self.rejected,
        )

    @property
    def document(self) -> str:
        """The text that is embedded for similarity search and near-duplicate checks."""
        return f"{self.prompt}\n{self.completion}".strip()


def content_id(*parts: Any) -> str:
    """A stable 32-hex-digit id for any JSON-serializable parts."""
    blob = json.dumps(parts, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]

"""The REST API's request and response bodies (``selfimprove.console.server``).

Each request body forbids unknown fields and caps its sizes, so a bad call gets
FastAPI's 422 with the offending field in ``loc``:

    VerifyRequest(tasks=[task], completions=["def f(): ..."])   # one completion per task
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from selfimprove.types import Task

MAX_ITEMS = 256
MAX_CHARS = 100_000


class _Body(BaseModel):
    # strict: `{"rounds": false}` must not become 0 rounds, nor "3" become 3
    model_config = ConfigDict(extra="forbid", strict=True)


class ErrorBody(BaseModel):
    """Every error response: a sentence saying what went wrong and what to do, or, for a
    request that fails validation, FastAPI's list of problems (each with its ``loc``)."""

    detail: str | list[dict[str, Any]]


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (400, "A body that is not valid JSON"),
        (401, "No token, or the wrong one"),
        (404, "No such round or example"),
        (409, "The run's state forbids it (no run yet, nothing pending, already running)"),
        (422, "A bad request: the field and the problem"),
        (500, "An internal error"),
        (503, "The run's model (or the operator's) cannot be loaded or reached"),
    )
}


class BudgetRequest(_Body):
    rounds: int | None = Field(default=None, ge=0, le=10_000, description="Rounds in all")
    tasks_per_round: int | None = Field(default=None, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _something(self) -> BudgetRequest:
        if self.rounds is None and self.tasks_per_round is None:
            raise ValueError("give rounds and/or tasks_per_round")
        return self


class ApprovalRequestBody(_Body):
    approve: StrictBool = Field(description="true promotes the pending candidate, false rejects it")
    note: str = Field(default="", max_length=2_000)
    by: str = Field(default="operator", min_length=1, max_length=100)


class ApprovalRequiredBody(_Body):
    on: StrictBool = Field(description="true: the gate asks a human before promoting")


class TasksRequest(_Body):
    tasks: list[Task] = Field(min_length=1, max_length=10_000)


class TasksAdded(BaseModel):
    added: int = Field(description="Tasks that were new (an id already queued is skipped)")


class LoopStartRequest(_Body):
    resume: bool = Field(
        default=True, description="Continue the run's checkpoint if there is one (else start)"
    )


class LoopStarted(BaseModel):
    out_dir: str
    resumed: bool
    state: str


class _Aligned(_Body):
    """Tasks with one answer each, in order."""

    tasks: list[Task] = Field(min_length=1, max_length=MAX_ITEMS)

    def _check_aligned(self, answers: list[str], name: str) -> None:
        if len(answers) != len(self.tasks):
            raise ValueError(
                f"{len(self.tasks)} tasks but {len(answers)} {name}; give one per task, in order"
            )


class VerifyRequest(_Aligned):
    completions: list[Annotated[str, Field(max_length=MAX_CHARS)]] = Field(max_length=MAX_ITEMS)

    @model_validator(mode="after")
    def _aligned(self) -> VerifyRequest:
        self._check_aligned(self.completions, "completions")
        return self


class InjectRequest(_Body):
    task: Task
    completion: str = Field(max_length=MAX_CHARS, description="A correct answer of the task")
    per_answer: int = Field(default=2, ge=1, le=8)
    operators: list[str] | None = Field(default=None, description="Default: all that fit")
    seed: int = 0


class InduceRequest(_Aligned):
    answers: list[Annotated[str, Field(max_length=MAX_CHARS)]] = Field(max_length=MAX_ITEMS)
    per_scope: int = Field(default=1, ge=1, le=20)
    min_examples: int = Field(default=1, ge=1, le=MAX_ITEMS)

    @model_validator(mode="after")
    def _aligned(self) -> InduceRequest:
        self._check_aligned(self.answers, "answers")
        return self


Which = Literal["student", "teacher"]
_WHICH = "The run's student (config.student), or its teacher (config.teacher, when set)"


class GenerateRequest(_Body):
    tasks: list[Task] = Field(min_length=1, max_length=64)
    n: int = Field(default=1, ge=1, le=16, description="Answers per task")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    seed: int = 0
    model: Which = Field(default="student", description=_WHICH)


class CritiqueRequest(_Aligned):
    answers: list[Annotated[str, Field(max_length=MAX_CHARS)]] = Field(max_length=MAX_ITEMS)
    max_tokens: int = Field(default=256, ge=16, le=2048)
    model: Which = Field(default="student", description=_WHICH)

    @model_validator(mode="after")
    def _aligned(self) -> CritiqueRequest:
        self._check_aligned(self.answers, "answers")
        return self


class DebugRequest(_Aligned):
    completions: list[Annotated[str, Field(max_length=MAX_CHARS)]] = Field(max_length=MAX_ITEMS)
    turns: int = Field(default=2, ge=1, le=4, description="Fix attempts per failed answer")
    model: Which = Field(default="student", description=_WHICH)

    @model_validator(mode="after")
    def _aligned(self) -> DebugRequest:
        self._check_aligned(self.completions, "completions")
        return self


class ChatRequest(_Body):
    message: str = Field(min_length=1, max_length=20_000)


class ChatReply(BaseModel):
    reply: str = Field(description="Markdown")

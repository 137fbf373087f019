"""The REST API's agent routes: each agent called directly on the caller's data.

``POST /api/verify``, ``/api/inject`` and ``/api/workflows/induce`` need no model;
``/api/generate``, ``/api/critique`` and ``/api/debug`` use the run's student (or
teacher), loaded on first use and kept; ``/api/chat`` asks the operator. Code in a
request runs only in the sandbox, at most two sandbox jobs at a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI, HTTPException

from selfimprove.agents.critic import Critique
from selfimprove.agents.debug import DebugTrajectory
from selfimprove.agents.injection import Injection
from selfimprove.agents.workflows import Workflow
from selfimprove.console.schemas import (
    ChatReply,
    ChatRequest,
    CritiqueRequest,
    DebugRequest,
    GenerateRequest,
    InduceRequest,
    InjectRequest,
    VerifyRequest,
)
from selfimprove.types import Attempt, Verdict

if TYPE_CHECKING:
    from selfimprove.console.server import _Console


def add_agent_routes(app: FastAPI, console: _Console) -> None:
    """The agents' routes (tag ``agents``) on ``app``."""

    @app.post("/api/verify", tags=["agents"])
    def verify(body: VerifyRequest) -> list[Verdict]:
        """Grade one completion per task; code runs in the sandbox. Verdicts in task order."""
        from selfimprove import api

        with console.sandbox_slots:
            return api.verify(body.tasks, body.completions)

    @app.post("/api/inject", tags=["agents"])
    def inject(body: InjectRequest) -> list[Injection]:
        """Plant verified errors in a correct answer (RISE operators, graded in the sandbox)."""
        return _inject(console, body)

    @app.post("/api/workflows/induce", tags=["agents"])
    def induce(body: InduceRequest) -> list[Workflow]:
        """Reusable workflows from solved tasks and their verified answers (no teacher)."""
        from selfimprove.agents import induce_workflows

        try:
            return induce_workflows(
                body.tasks, body.answers, per_scope=body.per_scope, min_examples=body.min_examples
            )
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None

    @app.post("/api/generate", tags=["agents"])
    def generate(body: GenerateRequest) -> list[Attempt]:
        """``n`` answers per task from the run's student (or teacher), each graded."""
        from selfimprove import api

        with console._model_lock, console.sandbox_slots:
            model = console.model(body.model)
            return api.generate(
                model, body.tasks, n=body.n, temperature=body.temperature, seed=body.seed
            )

    @app.post("/api/critique", tags=["agents"])
    def critique(body: CritiqueRequest) -> list[Critique]:
        """A structured critique of each answer (advice: the verifier decides)."""
        from selfimprove.agents import critique

        with console._model_lock:
            model = console.model(body.model)
            return critique(model, body.tasks, body.answers, max_tokens=body.max_tokens)

    @app.post("/api/debug", tags=["agents"])
    def debug(body: DebugRequest) -> list[DebugTrajectory]:
        """Grade each completion; fix the failed ones from the verifier's feedback."""
        from selfimprove.agents import self_debug
        from selfimprove.sandbox import SandboxPool
        from selfimprove.tasks import Grader

        with console._model_lock, console.sandbox_slots, SandboxPool() as pool:
            model = console.model(body.model)
            grader = Grader(pool)
            verdicts = grader.grade(body.tasks, body.completions)
            failed = [i for i, v in enumerate(verdicts) if not v.passed]
            fixed = self_debug(
                model,
                grader,
                [body.tasks[i] for i in failed],
                [body.completions[i] for i in failed],
                [verdicts[i] for i in failed],
                turns=body.turns,
            )
            found = [  # an answer that passes needs no fix: a trajectory with no turns
                DebugTrajectory(task_id=t.id, failed=c, verdict=v)
                for t, c, v in zip(body.tasks, body.completions, verdicts, strict=True)
            ]
            for i, trajectory in zip(failed, fixed, strict=True):
                found[i] = trajectory
            return found

    @app.post("/api/chat", tags=["agents"])
    def chat(body: ChatRequest) -> ChatReply:
        """Ask the operator (slash commands such as ``/status`` need no model)."""
        return ChatReply(reply=console.operator().reply(body.message))


def _inject(console: _Console, body: InjectRequest) -> list[Injection]:
    import random

    from selfimprove.agents import inject_errors
    from selfimprove.agents.inject import operators_for
    from selfimprove.sandbox import SandboxPool
    from selfimprove.tasks import Grader

    try:
        operators_for(body.task, body.operators)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    with console.sandbox_slots, SandboxPool() as pool:
        grader = Grader(pool)
        verdict = grader.grade([body.task], [body.completion])[0]
        if not verdict.passed:
            raise HTTPException(
                422,
                f"the completion fails task {body.task.id!r} ({verdict.reason[:300]}); "
                "error injection starts from a correct answer",
            )
        return inject_errors(
            body.task,
            body.completion,
            grader,
            operators=body.operators,
            per_answer=body.per_answer,
            rng=random.Random(body.seed),
        )

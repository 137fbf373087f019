"""The REST API over one run folder (``selfimprove serve``): read it, steer it, call agents.

    app = create_app("runs/demo", token=token)      # a FastAPI app; uvicorn serves it
    # curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8765/api/status

Every route needs the token (``selfimprove.console.auth``), the OpenAPI schema
(``/openapi.json``, ``/docs``) and the console UI under ``/console`` included;
``/login?token=...`` trades it for a cookie once. There is no CORS: other
origins cannot call it from a browser. Routes, by tag:

- run: ``GET /api/status``, ``/api/rounds``, ``/api/rounds/{n}/failures``,
  ``/api/examples`` (filters), ``/api/examples/{id}`` (with lineage);
- events: ``GET /api/events?after=N`` and ``/api/events/stream`` (server-sent
  events, resumable with ``Last-Event-ID``);
- control: ``POST /api/control/pause|resume|stop``, ``/api/budget``,
  ``/api/approval``, ``/api/tasks``, ``/api/loop/start``;
- agents: ``POST /api/verify``, ``/api/inject``, ``/api/workflows/induce``, and with
  the run's student (or teacher), loaded on first use: ``/api/generate``,
  ``/api/critique``, ``/api/debug``; ``/api/chat`` for the operator.

Errors are ``{"detail": "..."}``: 401 without the token, 404 for a round or
example that is not there, 409 when the run's state forbids the action (no run
yet, nothing to approve, already running), 422 for a bad request (FastAPI's
validation errors name the field in ``loc``; the bodies are in
``selfimprove.console.schemas``), 503 when the operator's model cannot be used.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from selfimprove.checkpoints import has_checkpoints
from selfimprove.config import Config
from selfimprove.console.agent_routes import add_agent_routes
from selfimprove.console.auth import COOKIE, LOGIN_PATH, TokenAuth, token_matches
from selfimprove.console.schemas import (
    ERROR_RESPONSES,
    ApprovalRequestBody,
    ApprovalRequiredBody,
    BudgetRequest,
    LoopStarted,
    LoopStartRequest,
    TasksAdded,
    TasksRequest,
)
from selfimprove.control import ApprovalDecision, Control, DecisionError
from selfimprove.eval.report import RoundRecord
from selfimprove.events import Event
from selfimprove.loop import LoopHandle, RunStateError, is_running
from selfimprove.models.base import ModelError
from selfimprove.runs import ExampleView, Run, RunError, RunStatus
from selfimprove.types import Example, ExampleKind

MAX_BODY_BYTES = 64 * 1024 * 1024
EXAMPLE_ID = r"^[A-Za-z0-9_:.\-]{1,200}$"
POLL_S = 0.5
COOKIE_MAX_AGE_S = 30 * 24 * 3600
UI_PATH = "/console"
END_KINDS = frozenset({"run_finished", "stopped", "run_failed"})


# -- the app ---------------------------------------------------------------------------------
@dataclass
class _Console:
    """What the routes share: the run, its config, the operator and a started loop."""

    run: Run
    config: Config | None
    home: str  # where / and /login send a browser
    loop: LoopHandle | None = None
    sandbox_slots: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(2)
    )
    _operator: Any = None
    _operator_lock: threading.Lock = field(default_factory=threading.Lock)
    _models: dict[str, Any] = field(default_factory=dict)
    _model_lock: threading.Lock = field(default_factory=threading.Lock)

    def model(self, which: str) -> Any:
        """The run's student or teacher, loaded on first use and kept (one call at a time)."""
        from selfimprove.models import load_model

        config = self.run_config()
        if which == "teacher" and not config.teacher.model:
            raise HTTPException(409, "the run has no teacher (config.teacher.model is null)")
        if which not in self._models:
            self._models[which] = load_model(getattr(config, which))
        return self._models[which]

    def require_run(self) -> None:
        """409 unless the loop has written the run's config (the store needs it)."""
        try:
            self.run.config  # noqa: B018  (reads config.json)
        except RunError as exc:
            raise HTTPException(409, str(exc)) from None

    def run_config(self) -> Config:
        """The run's own config.json, else the config the server was started with."""
        if (self.run.out_dir / "config.json").exists():
            return self.run.config
        if self.config is None:
            raise HTTPException(
                409,
                f"no config for {str(self.run.out_dir)!r}: it has no config.json and the server "
                "was started without --config",
            )
        return self.config

    def operator(self) -> Any:
        """The chat operator, made on first use (it may open a model client)."""
        with self._operator_lock:
            if self._operator is None:
                from selfimprove.console.operator import make_operator

                config = self.config or (
                    self.run.config if (self.run.out_dir / "config.json").exists() else Config()
                )
                self._operator = make_operator(self.run, config)
            return self._operator


def create_app(
    run_dir: str | Path, *, token: str, config: Config | None = None, ui: bool = True
) -> FastAPI:
    """The console's FastAPI app over the run in ``run_dir`` (which need not exist yet).

    Args:
        run_dir: the run folder (``loop.out_dir``).
        token: what every request must carry (see ``selfimprove.console.auth``).
        config: the config ``/api/loop/start`` uses when the folder has no
            ``config.json`` yet, and the operator's (``console.operator``).
        ui: mount the Gradio console under ``/console`` when gradio is installed.
    """
    if len(token) < 16:
        raise ValueError(f"the console token has {len(token)} characters; use at least 16")
    mount = ui and _has_gradio()
    console = _Console(Run(run_dir), config, home=f"{UI_PATH}/" if mount else "/docs")
    app = FastAPI(
        title="selfimprove console",
        summary=f"Read and steer the run in {str(run_dir)!r}",
        max_body_size=MAX_BODY_BYTES,
        responses=ERROR_RESPONSES,
    )
    app.state.console = console
    app.add_middleware(TokenAuth, token=token)
    _add_error_handlers(app)
    _add_auth_routes(app, console, token)
    _add_run_routes(app, console)
    _add_event_routes(app, console)
    _add_control_routes(app, console)
    add_agent_routes(app, console)
    if mount:
        from selfimprove.console.web import mount_console

        mount_console(app, console.run, console.operator(), path=UI_PATH)
    return app


def _has_gradio() -> bool:
    try:
        import gradio  # noqa: F401
    except ImportError:
        return False
    return True


def _add_error_handlers(app: FastAPI) -> None:
    def handler(status: int) -> Callable[[Request, Exception], JSONResponse]:
        def respond(request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=status)

        return respond

    def internal(request: Request, exc: Exception) -> JSONResponse:
        detail = f"internal error: {type(exc).__name__}: {exc}"[:2_000]
        return JSONResponse({"detail": detail}, status_code=500)

    app.add_exception_handler(RunError, handler(422))
    app.add_exception_handler(DecisionError, handler(409))
    app.add_exception_handler(RunStateError, handler(409))
    app.add_exception_handler(ModelError, handler(503))  # the operator's model, misconfigured
    app.add_exception_handler(Exception, internal)


def _add_auth_routes(app: FastAPI, console: _Console, token: str) -> None:
    @app.get(LOGIN_PATH, tags=["auth"], response_class=RedirectResponse, status_code=303)
    def login(token_: Annotated[str | None, Query(alias="token")] = None) -> RedirectResponse:
        """Trade the token for a cookie (HttpOnly, SameSite=Strict) and open the console."""
        if not token_matches(token_, token):
            detail = "wrong token" if token_ else "give the token: /login?token=<token>"
            raise HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})
        response = RedirectResponse(console.home, status_code=303)
        response.set_cookie(
            COOKIE, token, max_age=COOKIE_MAX_AGE_S, httponly=True, samesite="strict", path="/"
        )
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @app.get("/", tags=["auth"], include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse(console.home, status_code=303)


def _add_run_routes(app: FastAPI, console: _Console) -> None:
    run = console.run

    @app.get("/api/status", tags=["run"])
    def status() -> RunStatus:
        """Where the run stands ("not_started" before there is one)."""
        return run.status()

    @app.get("/api/rounds", tags=["run"])
    def rounds() -> list[RoundRecord]:
        """The report's rounds, round 0 the baseline; empty before the baseline is done."""
        return run.rounds()

    @app.get("/api/rounds/{n}/failures", tags=["run"])
    def failures(
        n: Annotated[int, PathParam(ge=0, le=100_000)],
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> list[Example]:
        """The student's failed attempts of round ``n`` (0: the baseline's)."""
        console.require_run()
        try:
            return run.failures(n, limit=limit)
        except RunError as exc:
            raise HTTPException(404, str(exc)) from None

    @app.get("/api/examples", tags=["run"])
    def examples(
        kind: ExampleKind | None = None,
        round: Annotated[int | None, Query(ge=0)] = None,
        passed: bool | None = None,
        operator: Annotated[str | None, Query(max_length=100)] = None,
        task_id: Annotated[str | None, Query(max_length=200)] = None,
        q: Annotated[str | None, Query(max_length=2_000, description="Rank by similarity")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> list[Example]:
        """Stored examples matching every given filter (``operator``: the injected error type)."""
        console.require_run()
        return run.examples(
            kind=kind, round=round, passed=passed, operator=operator, task_id=task_id,
            query=q, limit=limit,
        )  # fmt: skip

    @app.get("/api/examples/{example_id}", tags=["run"])
    def example(
        example_id: Annotated[str, PathParam(pattern=EXAMPLE_ID, description="32 hex digits")],
    ) -> ExampleView:
        """One example with its parents (nearest first) and children."""
        if ".." in example_id:
            raise HTTPException(422, f"invalid example id {example_id!r}")
        console.require_run()
        try:
            return run.example(example_id)
        except RunError as exc:
            raise HTTPException(404, str(exc)) from None


def _add_event_routes(app: FastAPI, console: _Console) -> None:
    log = console.run.log

    @app.get("/api/events", tags=["events"])
    def events(
        after: Annotated[int, Query(ge=0)] = 0,
        kind: Annotated[list[str] | None, Query(description="Only these kinds")] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1_000,
    ) -> list[Event]:
        """Events with ``seq > after``, oldest first (page on with the last ``seq``)."""
        return log.read(after, kinds=set(kind) if kind else None)[:limit]

    @app.get("/api/events/stream", tags=["events"], response_class=EventSourceResponse)
    async def stream(
        request: Request,
        after: Annotated[int, Query(ge=0)] = 0,
        kind: Annotated[list[str] | None, Query(description="Only these kinds")] = None,
        until_end: Annotated[
            bool, Query(description="Close once the run has ended (finished, stopped, failed)")
        ] = False,
        max_s: Annotated[
            float | None, Query(gt=0, le=86_400, description="Close after this long")
        ] = None,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> AsyncIterator[ServerSentEvent]:
        """The run's events as server-sent events, live: ``event: <kind>``, ``id: <seq>``,
        ``data: <Event JSON>``. A reconnecting client's ``Last-Event-ID`` wins over
        ``after``. A comment line keeps an idle connection open every 15 s."""
        if last_event_id and last_event_id.strip().isdigit():
            after = int(last_event_id.strip())
        kinds = set(kind) if kind else None
        deadline = anyio.current_time() + (max_s if max_s is not None else float("inf"))
        last_kind = None
        while True:
            for event in await anyio.to_thread.run_sync(log.read, after):
                after, last_kind = event.seq, event.kind
                if kinds is None or event.kind in kinds:
                    yield ServerSentEvent(
                        raw_data=event.model_dump_json(), event=event.kind, id=str(event.seq)
                    )
            ended = last_kind in END_KINDS and not is_running(console.run.out_dir)
            left = deadline - anyio.current_time()
            if (until_end and ended) or left <= 0 or await request.is_disconnected():
                return
            await anyio.sleep(min(POLL_S, left))


def _add_control_routes(app: FastAPI, console: _Console) -> None:
    run = console.run

    @app.post("/api/control/pause", tags=["control"])
    def pause() -> Control:
        """Pause after the current step (the loop waits, state saved)."""
        return run.pause()

    @app.post("/api/control/resume", tags=["control"])
    def resume() -> Control:
        return run.resume()

    @app.post("/api/control/stop", tags=["control"])
    def stop() -> Control:
        """Stop after the current step; ``POST /api/loop/start`` continues later."""
        return run.stop()

    @app.post("/api/budget", tags=["control"])
    def budget(body: BudgetRequest) -> Control:
        """Change the run's budgets; the loop applies them at its next step."""
        return run.set_budget(rounds=body.rounds, tasks_per_round=body.tasks_per_round)

    @app.post("/api/approval/required", tags=["control"])
    def approval_required(body: ApprovalRequiredBody) -> Control:
        """Ask a human before every promotion from the next gate on, or stop asking."""
        return run.require_approval(body.on)

    @app.post("/api/approval", tags=["control"])
    def approval(body: ApprovalRequestBody) -> ApprovalDecision:
        """Answer the gate's pending promotion (409 when none is waiting)."""
        decide = run.approve if body.approve else run.reject
        return decide(body.note, by=body.by)

    @app.post("/api/tasks", tags=["control"])
    def add_tasks(body: TasksRequest) -> TasksAdded:
        """Queue training tasks for the run's next rounds (checked for held-out leaks)."""
        console.require_run()
        return TasksAdded(added=run.add_tasks(body.tasks))

    @app.post("/api/loop/start", tags=["control"], status_code=202)
    def start(body: LoopStartRequest | None = None) -> LoopStarted:
        """Run the loop in a background thread of this server (409 if something runs it)."""
        return _start_loop(console, body or LoopStartRequest())


def _start_loop(console: _Console, body: LoopStartRequest) -> LoopStarted:
    from selfimprove import loop

    out = console.run.out_dir
    if is_running(out):
        raise HTTPException(409, f"the run in {str(out)!r} is already running")
    checkpoint = has_checkpoints(out)
    if checkpoint and not body.resume:
        raise HTTPException(
            409, f"a run already exists in {str(out)!r}; start with resume: true to continue it"
        )
    config = console.run_config().model_copy(deep=True)
    config.loop.out_dir = out
    console.loop = loop.start_loop(config, resume=checkpoint)
    with contextlib.suppress(TimeoutError):  # what fails at once (lock, backend) raises here
        console.loop.wait(timeout=0.5)
    return LoopStarted(out_dir=str(out), resumed=checkpoint, state=console.run.status().state)

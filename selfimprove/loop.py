"""Running the round graph under an operator's control.

``run_loop(config)`` builds the real parts (student, sandbox, store, trainer) and
hands the compiled round graph to ``drive``, which streams it step by step and,
between steps (each one checkpointed: ``checkpoints.sqlite``, or a shared Postgres with
``loop.checkpointer``, see ``selfimprove.checkpoints``):

- appends the run's events to ``events.jsonl`` (``selfimprove.events``);
- applies ``control.json`` (``selfimprove.control``): a new ``rounds`` or
  ``tasks_per_round`` budget, ``require_approval`` switched on or off, ``paused`` (waits, state saved), ``stop`` (returns;
  ``resume=True`` continues from the same step);
- at each round boundary, stops when a budget is spent (``loop.max_*`` and
  ``loop.max_round_*`` for minutes, examples, model tokens and cost) and pauses,
  saying why, when a health signal fires (``selfimprove.health``);
- answers the gate's approval interrupt (``loop.require_approval``): writes
  ``approval.json``, waits for ``decisions/round-N.json`` and resumes the graph
  with it.

One process runs a run folder at a time (``run.lock``); a second gets
``RunStateError``. ``start_loop`` runs the same in a background thread and
returns a ``LoopHandle``.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from langgraph.types import Command

from selfimprove.config import Config
from selfimprove.control import ApprovalRequest, RunControl
from selfimprove.eval.report import RoundRecord, read_report
from selfimprove.events import EventLog, emit, listening
from selfimprove.files import write_text_atomic
from selfimprove.health import budget_exhausted, unhealthy

Outcome = Literal["finished", "stopped"]
THREAD = "run"  # the graph thread of a run folder's own checkpoints.sqlite
POLL_S = 0.5


class RunStateError(RuntimeError):
    """A run folder is in a state the requested action cannot start from."""


def run_loop(
    config: Config,
    *,
    resume: bool = False,
    show_progress: bool = True,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
) -> list[RoundRecord]:
    """Run the gated improvement loop; return the report's rounds (round 0 is the baseline).

    State is checkpointed after every step (``loop.checkpointer``);
    ``resume=True`` continues an interrupted or stopped run where it stopped, or a
    finished one whose ``loop.rounds`` was raised. ``on_event(kind, data)`` sees
    every event of the run as it happens.

    Raises:
        RunStateError: a run already exists in ``out_dir`` (and ``resume`` is False),
            there is nothing to resume, or another process is running it.
    """
    from selfimprove.models.student import resolve_model_path

    if config.student.backend != "transformers":
        raise RunStateError(
            f"the loop trains the student, so student.backend must be 'transformers', "
            f"got {config.student.backend!r}; serve the promoted model through litellm instead"
        )
    from selfimprove.checkpoints import has_checkpoints

    out = Path(config.loop.out_dir)
    started = has_checkpoints(out)
    if started and not resume:
        raise RunStateError(
            f"a run already exists in {str(out)!r}; pass --resume or pick another --out"
        )
    if resume and not started:
        raise RunStateError(f"nothing to resume in {str(out)!r}: no checkpoints there")
    out.mkdir(parents=True, exist_ok=True)
    with run_lock(out), real_deps(config, show_progress) as deps:
        base = None if resume else resolve_model_path(config.student.model)
        drive_deps(deps, base, on_event=on_event)
    return read_report(out / "report.json")


def drive_deps(
    deps: Any,
    base_model: str | None,
    *,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
) -> Outcome:
    """Record ``config.json``, build the round graph over ``deps`` checkpointed where
    ``loop.checkpointer`` says (``checkpoints.sqlite``, or a shared Postgres on this
    run's own thread: ``selfimprove.checkpoints``), and ``drive`` it from
    ``base_model`` (None: resume).

    The caller holds ``run_lock`` of ``deps.out_dir``.
    """
    from selfimprove.checkpoints import open_checkpoints
    from selfimprove.graphs.round import build_round_graph, initial_state

    config, out = deps.config, Path(deps.out_dir)
    with open_checkpoints(config.loop, out, resume=base_model is None) as checkpoints:
        # after: a refused start (postgres: a run already in the database) changes nothing
        write_text_atomic(out / "config.json", config.model_dump_json(indent=2) + "\n")
        graph = build_round_graph(deps, checkpointer=checkpoints.saver)
        start = None if base_model is None else initial_state(base_model)
        return drive(graph, start, config, on_event=on_event, thread_id=checkpoints.thread_id)


@contextmanager
def real_deps(config: Config, show_progress: bool) -> Iterator[Any]:
    """The round graph's parts for ``config``: the student, sandbox, store, trainer."""
    from selfimprove.tasks import Grader, load_task_set

    task_set = load_task_set(config.tasks)  # first: a bad task file fails before slow imports

    from selfimprove.api import store_config
    from selfimprove.graphs.collect import make_collector
    from selfimprove.graphs.round import RoundDeps
    from selfimprove.memory import open_store, open_workflows
    from selfimprove.models import load_model
    from selfimprove.sandbox import SandboxPool
    from selfimprove.trainers import train_round

    store = open_store(store_config(config))
    loop = config.loop
    settings = collect_settings(config, show_progress=show_progress)
    teacher = load_model(config.teacher) if config.teacher.model else None
    workflows = open_workflows(store) if loop.workflows else None

    def load(path: str):
        return load_model(config.student.model_copy(update={"model": path}))

    with SandboxPool(config.sandbox) as sandbox:
        grader = Grader(sandbox)
        yield RoundDeps(
            config=config,
            task_set=task_set,
            store=store,
            grader=grader,
            load_model=load,
            collect=make_collector(grader, store, settings, teacher=teacher, workflows=workflows),
            train=train_round,
            out_dir=Path(config.loop.out_dir),
            show_progress=show_progress,
            teacher=teacher,
            workflows=workflows,
        )


def collect_settings(config: Config, *, show_progress: bool = False) -> Any:
    """The collect graph's ``CollectSettings`` for ``config`` (its ``loop`` switches)."""
    from selfimprove.graphs.collect import CollectSettings

    loop = config.loop
    return CollectSettings(
        samples_per_task=loop.samples_per_task,
        temperature=config.student.temperature,
        seed=config.student.seed,
        self_debug=loop.self_debug,
        debug_turns=loop.debug_turns,
        inject_errors=loop.inject_errors,
        retrieve_k=loop.retrieve_k,
        self_edit=loop.self_edit,
        self_review=loop.self_review,
        critic=loop.critic,
        critic_samples=loop.critic_samples,
        workflows=loop.workflows,
        workflow_min_uses=loop.workflow_min_uses,
        show_progress=show_progress,
    )


def drive(
    graph: Any,
    start: dict[str, Any] | None,
    config: Config,
    *,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
    thread_id: str = THREAD,
) -> Outcome:
    """Stream ``graph`` (checkpointed) to its end under ``control.json``; see the module doc.

    ``start`` is the initial state, or None to continue the checkpointed thread
    ``thread_id``. ``config`` is the run's config; budget changes are written into it.
    """
    out = Path(config.loop.out_dir)
    log, control = EventLog(out / "events.jsonl"), RunControl(out)
    with log.capture(), listening(on_event) if on_event else _nothing():
        emit("run_started", resume=start is None, rounds=config.loop.rounds, pid=os.getpid())
        try:
            thread = {"configurable": {"thread_id": thread_id}}
            outcome = _drive(graph, start, config, control, thread)
        except BaseException as exc:
            emit("run_failed", error=f"{type(exc).__name__}: {exc}"[:2000])
            raise
        if outcome == "stopped":
            if control.read().stop:
                control.update(stop=False)  # done: the next resume goes on
            emit("stopped")
        else:
            emit("run_finished")
    return outcome


def _drive(
    graph: Any, start: Any, config: Config, control: RunControl, thread: dict[str, Any]
) -> Outcome:
    if start is None:
        snapshot = graph.get_state(thread)
        if not snapshot.next and not snapshot.interrupts and snapshot.values:
            # finished before: continue only if the budget now asks for more rounds
            _apply(control.read(), config)
            if snapshot.values.get("round", 0) > config.loop.rounds:
                return "finished"
            graph.update_state(thread, None, as_node="report")
    resumed = start is None and graph.get_state(thread).next
    if resumed and _round_boundary(config, control, health=False):
        return "stopped"
    while True:
        for update in graph.stream(start, thread, stream_mode="updates"):
            at_boundary = "report" in update and graph.get_state(thread).next
            if at_boundary and _round_boundary(config, control):
                return "stopped"
            if _checkpoint(config, control) == "stop":
                return "stopped"
        start = None
        snapshot = graph.get_state(thread)
        if not snapshot.interrupts:
            return "finished"
        request = ApprovalRequest.model_validate(snapshot.interrupts[0].value)
        decision = control.decision(request.round)
        if decision is None:
            control.request(request)
            emit("approval_requested", **request.model_dump())
            while (decision := control.decision(request.round)) is None:
                if control.read().stop:
                    return "stopped"
                time.sleep(POLL_S)
        control.clear_request()
        emit("approval", **decision.model_dump())
        start = Command(resume=decision.model_dump())


def _round_boundary(config: Config, control: RunControl, *, health: bool = True) -> bool:
    """Between rounds: whether a budget (``loop.max_*``) is spent, saying so if it is;
    else, with ``health``, pause (saying why) when a health signal fires."""
    path = Path(config.loop.out_dir) / "report.json"
    rounds = read_report(path) if path.exists() else []  # none before the baseline's report
    if rounds and (reason := budget_exhausted(config.loop, rounds)):
        emit("budget_exhausted", reason=reason)
        return True
    if health and (reason := unhealthy(config.loop, rounds)):
        control.update(paused=True, pause_reason=reason)
        emit("health", reason=reason)
    return False


def _checkpoint(config: Config, control: RunControl) -> Literal["go", "stop"]:
    """Between two steps: apply budgets, wait while paused, say whether to stop."""
    wanted = control.read()
    _apply(wanted, config)
    if wanted.paused and not wanted.stop:
        emit("paused")
        while (wanted := control.read()).paused and not wanted.stop:
            time.sleep(POLL_S)
        _apply(wanted, config)
        if not wanted.stop:
            emit("resumed")
    return "stop" if wanted.stop else "go"


def _apply(wanted: Any, config: Config) -> None:
    loop = config.loop
    changed = {}
    if wanted.rounds is not None and wanted.rounds != loop.rounds:
        changed["rounds"] = loop.rounds = wanted.rounds
    if wanted.tasks_per_round is not None and wanted.tasks_per_round != loop.tasks_per_round:
        changed["tasks_per_round"] = loop.tasks_per_round = wanted.tasks_per_round
    if wanted.require_approval is not None and wanted.require_approval != loop.require_approval:
        changed["require_approval"] = loop.require_approval = wanted.require_approval
    if changed:
        emit("budget", **changed)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold ``<out>/run.lock`` while the run goes on; another holder means another process."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "run.lock"
    with path.open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            pid = lock.read().strip() or "?"
            raise RunStateError(
                f"another process (pid {pid}) is running {str(out)!r}; "
                "steer it from `selfimprove console`, or wait for it to finish"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def is_running(out: str | Path) -> bool:
    """Whether some process holds the run folder's ``run.lock`` now."""
    path = Path(out) / "run.lock"
    if not path.exists():
        return False
    with path.open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
        return False


class LoopHandle:
    """A loop running in a background thread of this process (``start_loop``)."""

    def __init__(self, target: Callable[[], Any], out_dir: Path) -> None:
        from selfimprove.runs import Run  # runs imports this module

        self.out_dir = out_dir
        self.run = Run(out_dir)  # steer it as any process would
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(target,), daemon=True)
        self._thread.start()

    def _run(self, target: Callable[[], Any]) -> None:
        try:
            self.result = target()
        except BaseException as exc:  # reported through .error and wait()
            self.error = exc
            if not isinstance(exc, RunStateError):  # that folder is another process's run
                _record_failure(self.out_dir, exc)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the loop ends; return its rounds, or raise what it raised."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the loop in {str(self.out_dir)!r} is still running")
        if self.error is not None:
            raise self.error
        return self.result

    def pause(self) -> None:
        self.run.pause()

    def resume(self) -> None:
        self.run.resume()

    def stop(self) -> None:
        """Stop after the current step (state saved; ``resume=True`` continues)."""
        self.run.stop()


def _record_failure(out: Path, exc: BaseException) -> None:
    """Say in ``events.jsonl`` that a background loop failed, when ``drive`` did not get
    to (a bad task file, a model that does not load): the console and ``Run.status``
    show "failed" with the error instead of "not_started" for ever."""
    log = EventLog(out / "events.jsonl")
    events = log.read()
    if not events or events[-1].kind != "run_failed":
        log.emit("run_failed", error=f"{type(exc).__name__}: {exc}"[:2000])


def start_loop(config: Config, *, resume: bool = False, show_progress: bool = False) -> LoopHandle:
    """``run_loop`` in a background thread; steer it through the handle or the run folder."""
    return LoopHandle(
        lambda: run_loop(config, resume=resume, show_progress=show_progress),
        Path(config.loop.out_dir),
    )

"""A run folder as an object: what the console, the REST API and programs read and steer.

    run = Run("runs/demo")
    run.status()                 # state, rounds done, pending approval, last event
    run.rounds()                 # the report's RoundRecords
    run.failures(2)              # round 2's failed attempts
    run.examples(kind="pair", operator="off_by_one")
    run.example(id)              # one example with its lineage (parents and children)
    run.pause(); run.resume(); run.stop(); run.set_budget(rounds=5)
    run.require_approval()       # ask before promoting, from the next gate on
    run.approve("looks good")    # or run.reject(...): the gate's pending promotion
    run.add_tasks([task, ...])   # training tasks for the next round

It works whether or not a loop is running, and from any process: it reads the
files the loop writes (``report.json``, ``events.jsonl``, the store) and writes
only the control files (``selfimprove.control``) and ``added_tasks.jsonl``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from selfimprove.config import Config
from selfimprove.control import ApprovalDecision, ApprovalRequest, Control, RunControl
from selfimprove.eval.report import RoundRecord, read_report
from selfimprove.events import Event, EventLog
from selfimprove.files import write_text_atomic
from selfimprove.loop import is_running
from selfimprove.memory.base import ExampleStore
from selfimprove.types import Example, Task

RunState = Literal[
    "not_started",
    "running",
    "paused",
    "awaiting_approval",
    "stopped",
    "finished",
    "failed",
    "interrupted",
]
ADDED_TASKS = "added_tasks.jsonl"


class RunStatus(BaseModel):
    """Where a run stands."""

    out_dir: str
    state: RunState
    rounds_done: int = Field(description="Rounds gated so far (the baseline not counted)")
    rounds_planned: int | None
    current_round: int | None = Field(description="The round the last event named")
    heldout_pass_at_1: float | None = Field(description="The promoted model's held-out pass@1")
    baseline_pass_at_1: float | None
    pending_approval: ApprovalRequest | None = None
    control: Control
    last_event: Event | None = None
    progress: dict[str, Any] | None = Field(
        default=None, description="The latest progress, training_step or batch event's data"
    )
    usage: dict[str, float] = Field(
        default_factory=dict,
        description="Model calls, tokens and cost of the rounds reported so far, summed",
    )


class ExampleView(BaseModel):
    """One stored example with its lineage."""

    id: str
    example: Example
    parents: list[Example] = Field(
        description="Its parent, the parent's parent, ... (nearest first)"
    )
    children: list[Example]


class RunError(ValueError):
    """A request a run folder cannot serve (no such round, example, or bad tasks)."""


class Run:
    """Read and steer the run in ``out_dir`` (see the module docstring)."""

    def __init__(self, out_dir: str | Path, *, config: Config | None = None) -> None:
        self.out_dir = Path(out_dir)
        self._config = config
        self.control = RunControl(self.out_dir)
        self.log = EventLog(self.out_dir / "events.jsonl")

    # -- reading ------------------------------------------------------------------------
    @property
    def config(self) -> Config:
        """The run's config (``config.json``, written when the loop starts)."""
        if self._config is None:
            path = self.out_dir / "config.json"
            if not path.exists():
                raise RunError(
                    f"no run in {str(self.out_dir)!r} yet (no config.json); start one with "
                    "`selfimprove demo` or `selfimprove run CONFIG.yaml`"
                )
            self._config = Config.model_validate_json(path.read_text())
        return self._config

    def rounds(self) -> list[RoundRecord]:
        """The report's rounds, round 0 the baseline; empty before the baseline is done."""
        path = self.out_dir / "report.json"
        return read_report(path) if path.exists() else []

    def events(self, after: int = 0, *, kinds: set[str] | None = None) -> list[Event]:
        return self.log.read(after, kinds=kinds)

    def status(self) -> RunStatus:
        rounds = self.rounds()
        events = self.events()
        last = events[-1] if events else None
        lifecycle = next((e for e in reversed(events) if e.kind in _LIFECYCLE), None)
        control = self.control.read()
        pending = self.control.pending()
        running = is_running(self.out_dir)
        promoted = [r for r in rounds if r.promoted]
        planned = control.rounds
        if planned is None and (self.out_dir / "config.json").exists():
            planned = self.config.loop.rounds
        progress = next(
            (
                e.data | {"kind": e.kind}
                for e in reversed(events)
                if e.kind in ("progress", "training_step", "batch_verified")
            ),
            None,
        )
        return RunStatus(
            out_dir=str(self.out_dir),
            state=_state(running, control, pending, last, lifecycle),
            rounds_done=max(len(rounds) - 1, 0),
            rounds_planned=planned,
            current_round=last.round if last else None,
            heldout_pass_at_1=promoted[-1].metrics.get("heldout_pass_at_1") if promoted else None,
            baseline_pass_at_1=rounds[0].metrics.get("heldout_pass_at_1") if rounds else None,
            pending_approval=pending,
            control=control,
            last_event=last,
            progress=progress,
            usage=dict(sum((Counter(r.usage) for r in rounds), Counter())),
        )

    @cached_property
    def store(self) -> ExampleStore:
        from selfimprove.api import store_config
        from selfimprove.memory import open_store

        return open_store(store_config(self.config))

    def examples(
        self,
        *,
        kind: str | None = None,
        round: int | None = None,
        passed: bool | None = None,
        operator: str | None = None,
        task_id: str | None = None,
        query: str | None = None,
        limit: int = 50,
    ) -> list[Example]:
        """Stored examples matching every given filter; ``query`` ranks by similarity."""
        if limit < 1:
            raise RunError(f"limit must be at least 1, got {limit}")
        clauses: list[dict[str, Any]] = []
        for key, value in (
            ("kind", kind),
            ("round", round),
            ("passed", passed),
            ("error_type", operator),
            ("task_id", task_id),
        ):
            if value is not None:
                clauses.append({key: value})
        where = None if not clauses else clauses[0] if len(clauses) == 1 else {"$and": clauses}
        if query:
            return [hit.example for hit in self.store.search(query, k=limit, where=where)]
        return self.store.find(where, limit=limit)

    def failures(self, round: int, *, limit: int = 50) -> list[Example]:
        """The student's failed attempts of ``round`` (0: the baseline's held-out attempts)."""
        done = len(self.rounds())
        if round < 0 or (done and round >= done + 1):
            raise RunError(f"round {round} has not run yet; rounds 0-{max(done - 1, 0)} have")
        return self.examples(kind="attempt", round=round, passed=False, limit=limit)

    def example(self, example_id: str) -> ExampleView:
        """One example, the chain of its parents and its children."""
        found = self.store.get([example_id])
        if not found:
            raise RunError(f"no example with id {example_id!r} in {str(self.out_dir)!r}")
        example, parents, seen = found[0], [], {example_id}
        parent_id = example.parent_id
        while parent_id and parent_id not in seen and len(parents) < 20:
            seen.add(parent_id)
            got = self.store.get([parent_id])
            if not got:
                break
            parents.append(got[0])
            parent_id = got[0].parent_id
        children = self.store.find({"parent_id": example_id}, limit=100)
        return ExampleView(id=example_id, example=example, parents=parents, children=children)

    # -- steering -----------------------------------------------------------------------
    def pause(self) -> Control:
        """Pause after the current step (the loop waits, state saved)."""
        return self.control.update(paused=True)

    def resume(self) -> Control:
        return self.control.update(paused=False, pause_reason=None)

    def stop(self) -> Control:
        """Stop after the current step; ``selfimprove run --resume`` continues later.

        The loop clears the request when it acts on it; asked while nothing runs, it
        stops the next start at its first step.
        """
        return self.control.update(stop=True)

    def set_budget(
        self, *, rounds: int | None = None, tasks_per_round: int | None = None
    ) -> Control:
        """Change the run's budgets; the loop applies them at its next step."""
        changes = {"rounds": rounds, "tasks_per_round": tasks_per_round}
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            raise RunError("give rounds and/or tasks_per_round")
        return self.control.update(**changes)

    def require_approval(self, on: bool = True) -> Control:
        """Ask a human before every promotion from the next gate on (``False``: the gate decides)."""
        return self.control.update(require_approval=on)

    def approve(self, note: str = "", *, by: str = "operator") -> ApprovalDecision:
        return self.control.decide(True, note=note, by=by)

    def reject(self, note: str = "", *, by: str = "operator") -> ApprovalDecision:
        return self.control.decide(False, note=note, by=by)

    def add_tasks(self, tasks: Sequence[Task | dict[str, Any]]) -> int:
        """Queue training tasks; the loop draws them from its next round on.

        Each must be a valid task that does not leak a held-out or guard task.
        Returns how many were new (a task id already queued is skipped).

        Raises:
            RunError: a task is invalid or leaks a held-out task.
        """
        from selfimprove.memory.decontaminate import find_task_leaks
        from selfimprove.tasks import load_task_set

        parsed = []
        for i, task in enumerate(tasks):
            try:
                parsed.append(
                    Task.model_validate(task if isinstance(task, dict) else task.model_dump())
                )
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(map(str, e['loc'])) or 'task'}: {e['msg']}" for e in exc.errors()
                )
                raise RunError(f"task {i} is not a valid task ({problems})") from None
        parsed = [t.model_copy(update={"split": "train"}) for t in parsed]
        held = load_task_set(self.config.tasks)
        leaks = find_task_leaks(parsed, held.heldout + held.guard)
        if leaks:
            task, heldout = leaks[0]
            raise RunError(
                f"task {task!r} leaks held-out task {heldout!r} ({len(leaks)} leak(s)); "
                "training on it would inflate the held-out score"
            )
        known = {t.id for t in added_tasks(self.out_dir)}
        new = []
        for t in parsed:
            if t.id not in known:
                known.add(t.id)
                new.append(t)
        if new:
            path = self.out_dir / ADDED_TASKS
            old = path.read_text() if path.exists() else ""
            lines = "".join(t.model_dump_json() + "\n" for t in new)
            write_text_atomic(path, old + lines)
            self.log.emit("tasks_added", n=len(new), ids=[t.id for t in new][:20])
        return len(new)


def added_tasks(out_dir: str | Path) -> list[Task]:
    """The tasks an operator queued with ``Run.add_tasks`` (in order)."""
    path = Path(out_dir) / ADDED_TASKS
    if not path.exists():
        return []
    return [Task.model_validate(json.loads(line)) for line in path.read_text().splitlines() if line]


_LIFECYCLE = frozenset({"run_started", "run_finished", "stopped", "run_failed"})


def _state(
    running: bool,
    control: Control,
    pending: ApprovalRequest | None,
    last: Event | None,
    lifecycle: Event | None,
) -> RunState:
    if running:
        if pending is not None:
            return "awaiting_approval"
        if control.paused or (last is not None and last.kind == "paused"):
            return "paused"
        return "running"
    if lifecycle is None:
        return "not_started"
    return {"run_finished": "finished", "stopped": "stopped", "run_failed": "failed"}.get(
        lifecycle.kind, "awaiting_approval" if pending is not None else "interrupted"
    )

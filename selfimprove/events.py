"""The run's event stream: what the CLI, the console and the REST API all watch.

A running loop appends one JSON line per event to ``<out_dir>/events.jsonl``
(``EventLog``); any process reads it from a sequence number on, so a console
started in another terminal, or after the run, sees the same stream.

    log = EventLog("runs/demo/events.jsonl")
    with log.capture():                 # progress bars and training steps emit too
        log.emit("round_started", round=1)
    for event in log.read(after=0): print(event.kind, event.data)

Kinds (``EVENT_KINDS``): ``run_started``, ``round_started``, ``progress`` (a
long step's count, e.g. generating 96/480), ``batch_verified`` (a batch of
answers graded: ``passed``/``total``), ``training_step`` (stage, step, loss),
``gate`` (the round's decision and metrics), ``approval_requested``,
``approval``, ``paused``, ``resumed``, ``stopped``, ``budget`` (a cap changed),
``budget_exhausted`` (a cap reached: the run stops), ``health`` (a health signal:
the run pauses), ``tasks_added``,
``run_finished``, ``run_failed``. Code deep in a step emits with the module
function ``emit``; it reaches the log of the run capturing in that context (a
``ContextVar``, so two loops in one process keep separate streams), or nobody.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

EVENT_KINDS = frozenset(
    {
        "run_started",
        "round_started",
        "baseline",
        "collected",
        "progress",
        "batch_verified",
        "training_step",
        "gate",
        "approval_requested",
        "approval",
        "paused",
        "resumed",
        "stopped",
        "budget",
        "budget_exhausted",
        "health",
        "tasks_added",
        "run_finished",
        "run_failed",
    }
)

Listener = Callable[[str, dict[str, Any]], None]
# Per context, so two loops in one process (threads, the REST server) never mix their
# streams; LangGraph runs nodes in a copy of the caller's context, so they see it too.
_listeners: ContextVar[tuple[Listener, ...]] = ContextVar("selfimprove_listeners", default=())


class Event(BaseModel):
    """One line of ``events.jsonl``."""

    seq: int = Field(description="1-based position in the run's stream")
    time: float = Field(description="Unix time")
    kind: str
    round: int | None = None
    data: dict[str, Any] = Field(default_factory=dict)


def emit(kind: str, **data: Any) -> None:
    """Send an event to the runs capturing in this context (none: nothing happens)."""
    for listener in _listeners.get():
        listener(kind, data)


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Receive every ``emit`` of this context (and contexts copied from it) while the block runs."""
    token = _listeners.set((*_listeners.get(), listener))
    try:
        yield
    finally:
        _listeners.reset(token)


class EventLog:
    """Append-only JSONL of ``Event``; safe to write from threads, read from anywhere.

    Appends are single ``write`` calls on an ``O_APPEND`` file, so a reader in
    another process sees whole lines; a line cut by a crash is skipped.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._seq: int | None = None
        self._round: int | None = None

    def emit(self, kind: str, *, round: int | None = None, **data: Any) -> Event:
        """Append one event; ``round`` defaults to the last round any event named."""
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}; one of {sorted(EVENT_KINDS)}")
        with self._lock:
            if self._seq is None:
                tail = self.read()
                self._seq = tail[-1].seq if tail else 0
                self._round = next((e.round for e in reversed(tail) if e.round is not None), None)
            if round is not None:
                self._round = round
            self._seq += 1
            event = Event(seq=self._seq, time=time.time(), kind=kind, round=self._round, data=data)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            line = (event.model_dump_json() + "\n").encode()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        return event

    def read(self, after: int = 0, *, kinds: set[str] | None = None) -> list[Event]:
        """Events with ``seq > after`` (optionally only ``kinds``), oldest first."""
        if not self.path.exists():
            return []
        events = []
        with self.path.open("rb") as f:
            for raw in f:
                if not raw.endswith(b"\n"):
                    break  # being written, or cut by a crash
                try:
                    event = Event.model_validate(json.loads(raw))
                except ValueError:
                    continue
                if event.seq > after and (kinds is None or event.kind in kinds):
                    events.append(event)
        return events

    def follow(
        self, after: int = 0, *, poll_s: float = 0.5, until: Callable[[], bool] = lambda: False
    ) -> Iterator[Event]:
        """Yield events as they are appended, until ``until()`` is true."""
        while True:
            for event in self.read(after):
                after = event.seq
                yield event
            if until():
                return
            time.sleep(poll_s)

    @contextmanager
    def capture(self) -> Iterator[EventLog]:
        """Write every module-level ``emit`` to this log while the block runs."""

        def write(kind: str, data: dict[str, Any]) -> None:
            rest = {k: v for k, v in data.items() if k != "round"}
            self.emit(kind, round=data.get("round"), **rest)

        with listening(write):
            yield self


class Throttle:
    """Lets a repeated event through at most every ``every_s`` seconds (and the last one)."""

    def __init__(self, every_s: float = 1.0) -> None:
        self.every_s = every_s
        self._last = 0.0

    def __call__(self, final: bool = False) -> bool:
        now = time.monotonic()
        if final or now - self._last >= self.every_s:
            self._last = now
            return True
        return False

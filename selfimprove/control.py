"""Steering a run from outside: pause, resume, stop, budgets, approvals.

The run folder is the interface, so a console in another process (or another
terminal) steers a loop the same way the Python API does in-process:

- ``control.json``: ``paused``, ``stop``, budget overrides (``rounds``,
  ``tasks_per_round``) and ``require_approval`` (switch human approval of
  promotions on or off while the run goes), read by the loop between steps;
- ``approval.json``: the pending promotion the gate asks a human about
  (``loop.require_approval``), written by the loop while it waits;
- ``decisions/round-N.json``: the operator's answer, written once.

Every write is atomic; read-modify-writes of ``control.json`` hold a lock file.
"""

from __future__ import annotations

import fcntl
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from selfimprove.files import write_text_atomic


class Control(BaseModel):
    """What the operator asked of a running loop."""

    paused: bool = False
    pause_reason: str | None = Field(default=None, description="Why the loop paused itself")
    stop: bool = False
    rounds: int | None = Field(default=None, ge=0, le=10_000, description="Rounds in all")
    tasks_per_round: int | None = Field(default=None, ge=1, le=1_000_000)
    require_approval: bool | None = Field(
        default=None, description="Override loop.require_approval from the next gate on"
    )


class ApprovalRequest(BaseModel):
    """A candidate the gate would promote, waiting for a human (``require_approval``)."""

    round: int
    candidate: str | None
    incumbent: str
    candidate_metrics: dict[str, float]
    incumbent_metrics: dict[str, float]
    reasons: list[str]
    requested_at: float = Field(default_factory=time.time)


class ApprovalDecision(BaseModel):
    """The operator's answer to an ``ApprovalRequest``."""

    round: int
    approve: bool
    by: str = "operator"
    note: str = ""
    decided_at: float = Field(default_factory=time.time)


class DecisionError(ValueError):
    """An approval or rejection that does not match what the run is waiting for."""


class RunControl:
    """The control files of one run folder."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.control_path = self.out_dir / "control.json"
        self.approval_path = self.out_dir / "approval.json"
        self.decisions = self.out_dir / "decisions"

    # -- control.json -------------------------------------------------------------------
    def read(self) -> Control:
        """The current control (defaults when there is none, or it is unreadable)."""
        try:
            return Control.model_validate_json(self.control_path.read_text())
        except (OSError, ValueError):
            return Control()

    def update(self, **changes: Any) -> Control:
        """Change some fields of ``control.json``; returns the result."""
        with self._locked():
            control = Control.model_validate(self.read().model_dump() | changes)
            write_text_atomic(self.control_path, control.model_dump_json(indent=2) + "\n")
        return control

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with (self.out_dir / ".control.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # -- approvals ----------------------------------------------------------------------
    def pending(self) -> ApprovalRequest | None:
        """The promotion waiting for a decision, if any."""
        try:
            request = ApprovalRequest.model_validate_json(self.approval_path.read_text())
        except (OSError, ValueError):
            return None
        return None if self.decision(request.round) else request

    def request(self, request: ApprovalRequest) -> None:
        write_text_atomic(self.approval_path, request.model_dump_json(indent=2) + "\n")

    def decide(self, approve: bool, *, note: str = "", by: str = "operator") -> ApprovalDecision:
        """Answer the pending request.

        Raises:
            DecisionError: nothing is waiting for approval.
        """
        with self._locked():
            request = self.pending()
            if request is None:
                raise DecisionError(
                    f"no promotion is waiting for approval in {str(self.out_dir)!r} "
                    "(the run sets loop.require_approval: true and asks after a round's gate)"
                )
            decision = ApprovalDecision(round=request.round, approve=approve, note=note, by=by)
            path = self.decisions / f"round-{request.round}.json"
            write_text_atomic(path, decision.model_dump_json(indent=2) + "\n")
        return decision

    def decision(self, round: int) -> ApprovalDecision | None:
        """The recorded decision for ``round``, if one was made."""
        try:
            text = (self.decisions / f"round-{round}.json").read_text()
            return ApprovalDecision.model_validate(json.loads(text))
        except (OSError, ValueError):
            return None

    def clear_request(self) -> None:
        self.approval_path.unlink(missing_ok=True)

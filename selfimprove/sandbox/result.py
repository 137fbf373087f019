"""``ExecResult``: how one sandboxed program run ended.

A program passes when it exits 0 with no limit hit (``result.ok``); ``result.reason``
is a one-line explanation for logs, verdicts and self-debugging prompts.
"""

from __future__ import annotations

import signal
from typing import Literal

from pydantic import BaseModel, ConfigDict

Status = Literal["ok", "error", "timeout", "memory", "output_limit", "disk_limit", "crashed"]
_MAX_REASON_CHARS = 200


class ExecResult(BaseModel):
    """The outcome of running one program in the sandbox.

    Attributes:
        status: "ok" (exit code 0), "error" (non-zero exit, uncaught exception or
            killed by a signal), "timeout" (wall or CPU time limit), "memory"
            (MemoryError under the memory limit), "output_limit" (stdout plus stderr
            over the cap), "disk_limit" (its files over the scratch cap, basic mode;
            namespace mode's capped tmpfs makes writes fail instead) or "crashed"
            (the sandbox itself failed, not the program).
        exit_code: the process exit code; negative for a signal (as in subprocess);
            None when the sandbox killed the run (timeout, output or disk cap) or crashed.
        stdout: what the program printed, cut at the output cap.
        stderr: its error output, with the traceback of an uncaught exception.
        duration_s: wall time of the run.
        detail: for a limit or a crash, which limit and its value (used by ``reason``).
    """

    model_config = ConfigDict(frozen=True)

    status: Status
    exit_code: int | None
    stdout: str
    stderr: str
    duration_s: float
    detail: str = ""

    @property
    def ok(self) -> bool:
        """True when the program exited 0 without hitting any limit."""
        return self.status == "ok"

    @property
    def reason(self) -> str:
        """Short human text, e.g. "exit code 1: AssertionError: expected 3"."""
        if self.status == "ok":
            return "ok"
        if self.detail:
            return self.detail
        if self.exit_code is not None and self.exit_code < 0:
            try:
                name = signal.Signals(-self.exit_code).name
            except ValueError:
                name = f"signal {-self.exit_code}"
            return f"killed by {name}"
        last = _last_error_line(self.stderr)
        head = f"exit code {self.exit_code}"
        return f"{head}: {last}" if last else head


def _last_error_line(stderr: str) -> str:
    """The last meaningful stderr line; a bare exception name gets its source line.

    ``assert f(1) == 2`` fails with just "AssertionError", so the failing statement
    from the traceback line above it is added: "AssertionError: assert f(1) == 2".
    """
    lines = [line.rstrip() for line in stderr.splitlines()]
    # Skip 3.11's caret markers ("    ^^^^") under the source line.
    lines = [line for line in lines if line.strip() and line.strip().strip("^~") != ""]
    if not lines:
        return ""
    last = lines[-1].strip()
    if last.isidentifier() and len(lines) >= 2 and lines[-2].startswith("    "):
        last = f"{last}: {lines[-2].strip()}"
    if len(last) > _MAX_REASON_CHARS:
        last = last[: _MAX_REASON_CHARS - 3] + "..."
    return last

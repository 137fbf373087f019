"""Ending a run: SIGKILL every process it started and reap them (stdlib only).

In namespace mode the worker is PID 1 of its PID namespace, so ``kill(-1)``
reaches every other process in it. In basic mode the worker is a child
subreaper: the run's session is killed as a group, and any process that left
the session is found as an orphan re-parented to the worker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

_GIVE_UP_S = 2.0  # a process stuck in the kernel (D state) is left after this


def kill_run(namespaces: bool, pid: int) -> None:
    """SIGKILL the run's process and everything it started (its zombie is kept)."""
    if namespaces:
        _signal_all()
        return
    for kill in (os.kill, os.killpg):  # before setsid the group does not exist yet
        with contextlib.suppress(ProcessLookupError):
            kill(pid, signal.SIGKILL)


def _signal_all() -> None:
    # As PID 1 of our namespace, kill(-1) reaches every other process in it.
    with contextlib.suppress(ProcessLookupError):
        os.kill(-1, signal.SIGKILL)


def kill_leftovers(namespaces: bool) -> None:
    """Kill and reap every remaining descendant (escaped sessions included)."""
    # Every live descendant has an ancestor chain up to us whose top is our child
    # (dead parents pass their children to us), so "no children" means "none left".
    deadline = time.monotonic() + _GIVE_UP_S
    while _reap() and time.monotonic() < deadline:
        if namespaces:
            _signal_all()
        else:
            # We are a child subreaper: orphans of the run became our children.
            for pid in _children():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        time.sleep(0.001)


def _reap() -> bool:
    """Reap exited children; True while some child is still alive."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def _children() -> list[int]:
    me, found = os.getpid(), []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            # Fields after the parenthesised command name: state, ppid, ...
            if int(stat[stat.rindex(b")") + 2 :].split()[1]) == me:
                found.append(int(name))
    return found

"""Per-run confinement, applied in each forked child just before the model's code runs.

Stdlib only, like ``_isolation`` (whose ``Jail`` says what the worker achieved):
rlimits, the uid switch, dropped capabilities, no_new_privs, the run's environment
and, when there is no network namespace, an audit hook that blocks sockets.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys

from _isolation import (
    LIBC,
    MAX_OPEN_FILES,
    PR_SET_DUMPABLE,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
    Jail,
    check,
    prctl,
)

_CAP_VERSION_3 = 0x20080522


def confine(jail: Jail, spec: dict, run_dir: str) -> None:
    """Lock down the current (freshly forked) process before it runs model code.

    Args:
        jail: what the worker achieved at start-up.
        spec: the worker spec with the limits.
        run_dir: the run's empty working directory (becomes cwd, HOME and TMPDIR).
    """
    os.chdir(run_dir)
    limits = {
        resource.RLIMIT_AS: spec["memory_mb"] << 20,
        resource.RLIMIT_NPROC: spec["max_processes"] + jail.nproc_base,
        resource.RLIMIT_FSIZE: spec["max_file_bytes"],
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_NOFILE: MAX_OPEN_FILES,
    }
    for which, value in limits.items():
        resource.setrlimit(which, (value, value))
    # Soft limit sends SIGXCPU; the hard limit one second later is a SIGKILL.
    resource.setrlimit(resource.RLIMIT_CPU, (spec["cpu_time_s"], spec["cpu_time_s"] + 1))
    if jail.run_uid is not None:
        os.setgroups([])
        os.setresgid(jail.run_uid, jail.run_uid, jail.run_uid)
        os.setresuid(jail.run_uid, jail.run_uid, jail.run_uid)
    if jail.drop_caps:
        _drop_capabilities()
    prctl(PR_SET_NO_NEW_PRIVS, 1)  # setuid binaries and file caps grant nothing
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # after the uid switch, which clears it
    prctl(PR_SET_DUMPABLE, 1)  # so the child may read its own /proc/self/fd
    # setup() already reduced the environment to BASE_ENV; add the per-run parts.
    os.environ.update(HOME=run_dir, TMPDIR=run_dir)
    if jail.network == "audit-hook":
        sys.addaudithook(_deny_network)


def _drop_capabilities() -> None:
    header = (ctypes.c_uint32 * 2)(_CAP_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable x 2: all zero
    check(LIBC.capset(header, data), "capset")


_DENIED_EVENTS = frozenset(
    {
        "socket.__new__",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyaddr",
        "socket.getnameinfo",
        "ctypes.dlopen",
        "ctypes.call_function",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "subprocess.Popen",
    }
)


def _deny_network(event: str, args: tuple) -> None:
    """Audit hook for basic mode: no sockets, and no easy way around that from Python.

    New programs and ctypes are blocked too, since either could open a socket
    outside Python's view. A best-effort block, not a kernel guarantee.
    """
    if event in _DENIED_EVENTS:
        raise PermissionError(
            f"sandbox: {event!r} is blocked (no network namespace here, so sockets, "
            "ctypes and new programs are disabled)"
        )

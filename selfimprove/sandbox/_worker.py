"""Sandbox worker ("zygote"): runs model-written Python programs, one fork per job.

Started by ``selfimprove.sandbox.pool`` as::

    python -I -S _worker.py [--once] SPEC_JSON

Stdlib only, so it never imports selfimprove, torch or anything from site-packages.
It isolates itself once (``_isolation.setup``), answers ``{"ready": ...}`` and then
reads jobs ``{"code": str, "timeout_s": float | None}`` from stdin, each framed as a
4-byte big-endian length plus UTF-8 JSON, and writes one framed result per job.
For each job it forks a child that confines itself (``_isolation.confine``) and
``exec``s the code as ``__main__``; the worker enforces the wall timeout and the
output cap, then kills every process the run left behind. ``--once`` runs one job
and exits (the ``run_fresh`` baseline).
"""

from __future__ import annotations

import atexit
import builtins
import contextlib
import json
import linecache
import os
import select
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback
import types
from typing import NoReturn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _confine  # noqa: E402  (sibling files; -I keeps the script dir off sys.path)
import _isolation  # noqa: E402
import _reaper  # noqa: E402

del sys.path[0]

# Imported once in the worker so each forked run finds them ready (copy-on-write).
_WARM_MODULES = (
    "bisect", "collections", "copy", "dataclasses", "decimal", "enum", "fractions",
    "functools", "heapq", "itertools", "math", "operator", "random", "re", "statistics",
    "string", "typing", "unittest",
)  # fmt: skip
_FRAME = struct.Struct(">I")
_SETUP_FAILED = 125  # exit code of a child whose confinement failed (never runs code)
_DRAIN_S = 2.0  # how long to wait for pipes to close after the run was killed
_DISK_POLL_S = 0.02  # basic mode: how often a running program's directory is measured
_SOURCE = "<solution>"


def _recv(fd: int) -> dict | None:
    header = _read_exact(fd, _FRAME.size)
    if header is None:
        return None
    body = _read_exact(fd, _FRAME.unpack(header)[0])
    return None if body is None else json.loads(body)


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _send(fd: int, message: dict) -> None:
    body = json.dumps(message).encode()
    data = memoryview(_FRAME.pack(len(body)) + body)
    while data:
        data = data[os.write(fd, data) :]


def main(argv: list[str]) -> None:
    once = "--once" in argv
    spec = json.loads(argv[-1])
    # Keep the protocol off fds 0/1 so nothing printed by accident can corrupt it.
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    if not once:
        for name in _WARM_MODULES:
            __import__(name)
    jail = _isolation.setup(spec)
    # -S skips site, which is what defines exit() and quit(); programs use them.
    builtins.exit = builtins.quit = _site_exit
    try:
        _send(proto_out, {"ready": True, "isolation": jail.describe()})
        while (job := _recv(proto_in)) is not None:
            result, orphaned = run_job(job, spec, jail, proto_in)
            _send(proto_out, result)
            if once or orphaned:
                break
    except BrokenPipeError:
        pass  # the pool went away; returning ends this namespace and all in it


def _site_exit(code: object = None) -> None:
    raise SystemExit(code)


def run_job(job: dict, spec: dict, jail: _isolation.Jail, proto_in: int) -> tuple[dict, bool]:
    """Run one program in a confined child; returns (result message, pool is gone)."""
    timeout = float(job.get("timeout_s") or spec["wall_timeout_s"])
    run_dir = _make_run_dir(jail, spec)
    try:
        pid, fds = _start(job["code"], spec, jail, run_dir)
        # namespace mode: the scratch tmpfs itself is capped; basic mode: measure run_dir
        disk = None if jail.namespaces else run_dir
        watch = _Watch(pid, fds, proto_in)
        try:
            start = time.monotonic()
            limit = watch.wait(start + timeout, spec["max_output_bytes"], disk, _scratch(spec))
            duration = time.monotonic() - start
            _reaper.kill_run(jail.namespaces, pid)
            watch.drain(time.monotonic() + _DRAIN_S)
            _, status, usage = os.wait4(pid, 0)
            _reaper.kill_leftovers(jail.namespaces)
        finally:
            watch.close()
    except OSError as exc:  # fork or pipe failed: the host is out of processes or fds
        return _crashed(f"cannot start the run: {exc}"), False
    finally:
        _remove_run_dir(jail, run_dir)
    result = _verdict(spec, timeout, limit, status, usage, watch)
    result["duration_s"] = round(duration, 6)
    return result, limit == "orphaned"


def _start(code: str, spec: dict, jail: _isolation.Jail, run_dir: str) -> tuple[int, list[int]]:
    """Fork the run's child; returns its pid and the read ends of its three pipes."""
    pipes = [os.pipe() for _ in range(3)]  # stdout, stderr, status
    try:
        pid = os.fork()
    except OSError:
        for fd in (fd for pair in pipes for fd in pair):
            os.close(fd)
        raise
    if pid == 0:
        _child(code, spec, jail, run_dir, pipes)
    for _, w in pipes:
        os.close(w)
    return pid, [r for r, _ in pipes]


def _crashed(why: str) -> dict:
    return {
        "status": "crashed",
        "exit_code": None,
        "stdout": "",
        "stderr": "",
        "detail": f"sandbox worker crashed: {why}",
        "duration_s": 0.0,
    }


def _scratch(spec: dict) -> int:
    """Bytes a run may keep on disk in all: one file at the size cap plus 16 MiB."""
    return spec["max_file_bytes"] + (16 << 20)


def _make_run_dir(jail: _isolation.Jail, spec: dict) -> str:
    if jail.namespaces:
        _isolation.mount_scratch(_scratch(spec), _isolation.MAX_SCRATCH_FILES)
        run_dir = f"/tmp/run-{os.urandom(6).hex()}"
        os.mkdir(run_dir, 0o700)
    else:
        run_dir = tempfile.mkdtemp(prefix="selfimprove-sandbox-")
    if jail.run_uid is not None:
        os.chown(run_dir, jail.run_uid, jail.run_uid)
    return run_dir


def _remove_run_dir(jail: _isolation.Jail, run_dir: str) -> None:
    if jail.namespaces:
        _isolation.unmount_scratch()
    else:
        shutil.rmtree(run_dir, ignore_errors=True)


def _child(code: str, spec: dict, jail: _isolation.Jail, run_dir: str, pipes: list) -> NoReturn:
    """Body of the forked child: confine, run the code, exit. Never returns or raises.

    Nothing may unwind past here: that would run the worker's own loop in the child.
    """
    status_w = pipes[2][1]
    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(pipes[0][1], 1)
        os.dup2(pipes[1][1], 2)
        _isolation.close_fds(keep=(status_w, *jail.path_fds.values()))
        _confine.confine(jail, spec, run_dir)
    except BaseException as exc:  # noqa: BLE001  (never run code in a half-built jail)
        with contextlib.suppress(BaseException):
            os.write(status_w, f"setup: {exc!r}".encode())
        os._exit(_SETUP_FAILED)
    exit_code = 1
    try:
        exit_code = _execute(code, status_w)
    except BaseException:  # noqa: BLE001  (say, MemoryError while printing a traceback)
        exit_code = 1
    finally:
        os._exit(exit_code)


def _execute(code: str, status_fd: int) -> int:
    """Run ``code`` as ``__main__`` the way ``python file.py`` would; return the exit code."""
    module = types.ModuleType("__main__")
    module.__file__ = _SOURCE
    sys.modules["__main__"] = module
    sys.argv = [_SOURCE]
    # So tracebacks show the program's source lines.
    linecache.cache[_SOURCE] = (len(code), None, code.splitlines(True), _SOURCE)
    atexit._clear()
    try:
        exec(compile(code, _SOURCE, "exec"), module.__dict__)
        exit_code = 0
        if "threading" in sys.modules:
            sys.modules["threading"]._shutdown()  # join non-daemon threads, as at exit
    except SystemExit as exc:
        exit_code = _exit_code(exc.code)
    except BaseException as exc:  # noqa: BLE001
        # Drop our own frame so the traceback starts in the program.
        tb = exc.__traceback__.tb_next if exc.__traceback__ else None
        traceback.print_exception(type(exc), exc, tb)
        os.write(status_fd, type(exc).__name__.encode())
        exit_code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed or broken by the program
            stream.flush()
    return exit_code


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


class _Watch:
    """Reads a run's stdout, stderr and status pipes and notices its exit."""

    def __init__(self, pid: int, fds: list[int], proto_in: int) -> None:
        self.fds = fds
        self.data = {fd: bytearray() for fd in fds}
        self.open = set(fds)
        self.poller = select.poll()
        for fd in fds:
            self.poller.register(fd, select.POLLIN)
        self.pidfd = os.pidfd_open(pid)
        self.poller.register(self.pidfd, select.POLLIN)
        self.proto_in = proto_in
        self.poller.register(proto_in, select.POLLHUP)  # the pool closed our stdin

    def output_size(self) -> int:
        return len(self.data[self.fds[0]]) + len(self.data[self.fds[1]])

    def wait(
        self, deadline: float, cap: int, disk: str | None = None, disk_cap: int = 0
    ) -> str | None:
        """Pump output until the child exits; returns the limit hit, if any.

        With ``disk``, that directory is measured every ``_DISK_POLL_S`` while the
        child runs, and over ``disk_cap`` bytes or ``MAX_SCRATCH_FILES`` entries
        ends the run ("disk"); it can overshoot by what the run writes in one poll.
        """
        measured = time.monotonic()
        while True:
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                return "timeout"
            if disk is not None:
                left = min(left, max(0.0, measured + _DISK_POLL_S - now))
            exited = False
            for fd, _ in self.poller.poll(left * 1000):
                if fd == self.pidfd:
                    exited = True
                elif fd == self.proto_in:
                    return "orphaned"
                else:
                    self._read(fd)
            if self.output_size() > cap:
                return "output"
            if exited:
                return None
            if disk is not None and time.monotonic() >= measured + _DISK_POLL_S:
                if _over_disk_cap(disk, disk_cap, _isolation.MAX_SCRATCH_FILES):
                    return "disk"
                measured = time.monotonic()

    def _read(self, fd: int) -> None:
        chunk = os.read(fd, 1 << 16)
        if chunk:
            self.data[fd] += chunk
        else:
            self.poller.unregister(fd)
            self.open.discard(fd)

    def drain(self, deadline: float) -> None:
        """Read what the (now killed) processes left in the pipes, until EOF."""
        self.poller.unregister(self.pidfd)
        self.poller.unregister(self.proto_in)
        while self.open and (left := deadline - time.monotonic()) > 0:
            for fd, _ in self.poller.poll(left * 1000):
                self._read(fd)

    def close(self) -> None:
        for fd in (*self.fds, self.pidfd):
            os.close(fd)


def _over_disk_cap(root: str, max_bytes: int, max_entries: int) -> bool:
    """Whether the files under ``root`` take more than ``max_bytes`` of disk (allocated
    blocks) or number more than ``max_entries``; stops counting once over either."""
    used, entries, stack = 0, 0, [root]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    entries += 1
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        used += entry.stat(follow_symlinks=False).st_blocks * 512
                    except OSError:
                        continue  # removed meanwhile
                    if used > max_bytes or entries > max_entries:
                        return True
        except OSError:
            continue  # a directory removed or made unreadable by the run
    return False


def _verdict(
    spec: dict, timeout: float, limit: str | None, status: int, usage, watch: _Watch
) -> dict:
    """Turn how the run ended into the result message (status, exit code, output)."""
    if limit == "orphaned":
        return _crashed("the pool went away")
    out, err, note = (bytes(watch.data[fd]) for fd in watch.fds)
    cap = spec["max_output_bytes"]
    if len(out) + len(err) > cap:
        out = out[:cap]
        err = err[: max(0, cap - len(out))]
    exit_code = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    detail = ""
    if limit == "timeout":
        kind, exit_code, detail = "timeout", None, f"timeout after {timeout:g}s"
    elif limit == "output":
        kind, exit_code, detail = "output_limit", None, f"output over {cap} bytes"
    elif limit == "disk":
        kind, exit_code = "disk_limit", None
        detail = f"disk use over {_scratch(spec)} bytes or {_isolation.MAX_SCRATCH_FILES} files"
    elif exit_code == -signal.SIGXCPU or (
        exit_code == -signal.SIGKILL and cpu >= spec["cpu_time_s"]
    ):
        kind, detail = "timeout", f"cpu time limit ({spec['cpu_time_s']}s) exceeded"
    elif exit_code == _SETUP_FAILED and note.startswith(b"setup: "):
        kind, detail = "crashed", f"sandbox worker crashed: {note.decode(errors='replace')}"
    elif note == b"MemoryError" and exit_code != 0:
        kind, detail = "memory", f"memory limit ({spec['memory_mb']} MB) exceeded"
    else:
        kind = "ok" if exit_code == 0 else "error"
    return {
        "status": kind,
        "exit_code": exit_code,
        "stdout": out.decode("utf-8", "replace"),
        "stderr": err.decode("utf-8", "replace"),
        "detail": detail,
    }


if __name__ == "__main__":
    main(sys.argv[1:])

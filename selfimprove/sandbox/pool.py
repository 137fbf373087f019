"""``SandboxPool`` (reusable isolated workers) and ``run_fresh`` (one process per run).

Usage::

    from selfimprove.sandbox import SandboxPool

    with SandboxPool(config.sandbox) as pool:
        result = pool.run("assert 1 + 1 == 2")
        results = pool.map(programs)  # in parallel over the workers, order kept

Each worker is a ``python -I -S _worker.py`` process with a minimal environment
that isolates itself once and then forks one child per program (see the package
docstring for what is guaranteed). The pool talks to it over stdin/stdout with
length-prefixed JSON; a worker that dies or hangs is killed and replaced.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import queue
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from selfimprove.config import SandboxConfig
from selfimprove.sandbox.result import ExecResult

Isolation = Literal["auto", "basic"]
_WORKER_SCRIPT = Path(__file__).with_name("_worker.py")
_FRAME = struct.Struct(">I")
_START_TIMEOUT_S = 30.0
_GRACE_S = 10.0  # past a run's timeout before a silent worker counts as hung
_CLOSE_WAIT_S = 1.0
_WORKER_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
logger = logging.getLogger(__name__)


class _WorkerCrashed(Exception):
    """The worker process died, hung (``hung=True``) or broke the protocol."""

    def __init__(self, message: str, *, hung: bool = False) -> None:
        super().__init__(message)
        self.hung = hung


class _Worker:
    """One worker process and the framed JSON protocol spoken with it."""

    def __init__(self, spec: str, *, once: bool = False) -> None:
        if not sys.executable:
            raise RuntimeError("sys.executable is empty: no Python to start sandbox workers with")
        cmd = [sys.executable, "-I", "-S", str(_WORKER_SCRIPT), *(["--once"] if once else []), spec]
        self.isolation: dict = {}
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=dict(_WORKER_ENV),  # the caller's secrets never reach the worker
            cwd="/",
            start_new_session=True,  # no terminal signals; killpg never hits us
            bufsize=0,
        )

    @property
    def pid(self) -> int:
        return self._proc.pid

    def alive(self) -> bool:
        return self._proc.poll() is None

    def start(self) -> None:
        """Wait for the worker's ready message (it reports its isolation)."""
        message = self._recv(time.monotonic() + _START_TIMEOUT_S)
        if not message.get("ready"):
            raise _WorkerCrashed(f"unexpected first message {message!r}")
        self.isolation = message["isolation"]

    def run(self, code: str, timeout_s: float) -> dict:
        """Send one job and wait for its result message."""
        body = json.dumps({"code": code, "timeout_s": timeout_s}).encode()
        data = memoryview(_FRAME.pack(len(body)) + body)
        try:
            while data:
                data = data[self._proc.stdin.write(data) :]
        except (ValueError, OSError) as exc:  # closed or broken pipe: the worker is gone
            raise _WorkerCrashed(f"cannot send a job to worker pid {self.pid}: {exc}") from None
        return self._recv(time.monotonic() + timeout_s + _GRACE_S)

    def _recv(self, deadline: float) -> dict:
        size = _FRAME.unpack(self._read_exact(_FRAME.size, deadline))[0]
        body = self._read_exact(size, deadline)
        try:
            return json.loads(body)
        except ValueError:
            raise _WorkerCrashed(f"garbled message from worker pid {self.pid}") from None

    def _read_exact(self, size: int, deadline: float) -> bytes:
        fd, chunks, left = self._proc.stdout.fileno(), [], size
        poller = select.poll()  # not select(): our fds may be above FD_SETSIZE
        poller.register(fd, select.POLLIN)
        while left:
            wait = deadline - time.monotonic()
            if wait <= 0 or not poller.poll(wait * 1000):
                raise _WorkerCrashed(f"no answer from worker pid {self.pid} in time", hung=True)
            chunk = os.read(fd, left)
            if not chunk:
                code = self._proc.poll()
                raise _WorkerCrashed(f"worker pid {self.pid} exited (code {code!r})")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def begin_close(self) -> None:
        """Close its stdin: the worker exits and its namespace dies with it."""
        with contextlib.suppress(OSError):  # already broken: finish_close kills it
            self._proc.stdin.close()

    def finish_close(self) -> None:
        try:
            self._proc.wait(timeout=_CLOSE_WAIT_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()

    def close(self) -> None:
        self.begin_close()
        self.finish_close()


def _spec(config: SandboxConfig, isolation: Isolation) -> str:
    if isolation not in ("auto", "basic"):
        raise ValueError(f"isolation must be 'auto' or 'basic', got {isolation!r}")
    return json.dumps({**config.model_dump(), "isolation": isolation})


def _check_call(code: str, timeout_s: float | None, config: SandboxConfig) -> float:
    if not isinstance(code, str):
        raise TypeError(f"code must be a str holding a whole program, got {type(code).__name__}")
    timeout = config.wall_timeout_s if timeout_s is None else timeout_s
    if not (isinstance(timeout, int | float) and timeout > 0 and math.isfinite(timeout)):
        raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    return float(timeout)


def _crashed(why: str, started: float) -> ExecResult:
    return ExecResult(
        status="crashed",
        exit_code=None,
        stdout="",
        stderr="",
        duration_s=time.monotonic() - started,
        detail=f"sandbox worker crashed: {why}",
    )


class SandboxPool:
    """A pool of sandbox workers that run Python programs in parallel; thread-safe.

    Args:
        config: the limits; defaults to ``SandboxConfig()``.
        isolation: "auto" uses namespaces when the kernel allows and falls back to
            rlimits (logging a warning); "basic" never tries namespaces.

    Raises:
        RuntimeError: a worker did not start (the message says why).
    """

    def __init__(self, config: SandboxConfig | None = None, *, isolation: Isolation = "auto"):
        self._config = config or SandboxConfig()
        self._spec = _spec(self._config, isolation)
        self._lock = threading.Lock()
        self._idle: queue.SimpleQueue[_Worker | None] = queue.SimpleQueue()
        self._workers: set[_Worker] = set()
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        started: list[_Worker] = []
        try:
            # Spawn all first so they start up in parallel, then wait for each.
            started.extend(_Worker(self._spec) for _ in range(self._config.workers))
            for worker in started:
                worker.start()
        except (_WorkerCrashed, OSError) as exc:
            for worker in started:
                worker.close()
            raise RuntimeError(f"sandbox worker did not start: {exc}") from None
        self._isolation = started[0].isolation
        weaker = self._isolation["mode"] != "namespaces" or self._isolation["notes"]
        if isolation == "auto" and weaker:
            logger.warning("sandbox runs with weaker isolation: %s", self._isolation)
        for worker in started:
            self._workers.add(worker)
            self._idle.put(worker)

    @property
    def isolation(self) -> dict:
        """What the workers achieved: mode, network, uid, read-only fs, private /proc, notes."""
        return dict(self._isolation)

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def run(self, code: str, *, timeout_s: float | None = None) -> ExecResult:
        """Run one program (solution plus tests); it passes when it exits 0.

        Args:
            code: a complete Python program.
            timeout_s: wall-clock limit; defaults to ``config.wall_timeout_s``.

        Raises:
            RuntimeError: the pool is closed.
        """
        timeout = _check_call(code, timeout_s, self._config)
        started = time.monotonic()
        self._check_open()
        worker = self._idle.get()
        if worker is None:
            self._idle.put(None)  # wake the next waiter too
            self._check_open()
        try:
            worker, result = self._run_on(worker, code, timeout, started)
        finally:
            self._give_back(worker)
        return result

    def _run_on(
        self, worker: _Worker, code: str, timeout: float, started: float
    ) -> tuple[_Worker, ExecResult]:
        """Run on ``worker``, replacing it if dead; returns the worker to give back."""
        why = ""
        # Two tries: a worker that died (say, killed while idle) is not the program's
        # fault. A hung worker is not retried: that would cost another full timeout.
        for _ in range(2):
            if not worker.alive():
                worker, why = self._respawn(worker)
                if why:
                    break
            try:
                return worker, ExecResult(**worker.run(code, timeout))
            except _WorkerCrashed as exc:
                why = str(exc)
                worker.close()
                if exc.hung:
                    break
        return worker, _crashed(why, started)

    def _respawn(self, old: _Worker) -> tuple[_Worker, str]:
        """Replace a dead worker; on failure return a dead one (retried next use) and why."""
        old.close()
        with self._lock:
            self._workers.discard(old)
            if self._closed:
                return old, "the pool was closed during the run"
        try:
            new = _Worker(self._spec)
        except OSError as exc:
            return old, f"cannot start a new worker: {exc}"
        with self._lock:
            self._workers.add(new)
        try:
            new.start()
        except _WorkerCrashed as exc:
            new.close()
            return new, f"a new worker did not start: {exc}"
        return new, ""

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            closed = self._closed
        if closed:
            worker.close()
        else:
            self._idle.put(worker)

    def _check_open(self) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("SandboxPool is closed; create a new one")

    def map(self, codes: Sequence[str], *, timeout_s: float | None = None) -> list[ExecResult]:
        """Run many programs in parallel over the workers; results in input order."""
        codes = list(codes)
        for code in codes:
            _check_call(code, timeout_s, self._config)
        self._check_open()
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self._config.workers, thread_name_prefix="sandbox"
                )
            executor = self._executor
        return list(executor.map(lambda code: self.run(code, timeout_s=timeout_s), codes))

    def close(self) -> None:
        """Stop every worker (runs in flight end as "crashed"); idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers, self._workers = list(self._workers), set()
            executor = self._executor
        while not self._idle.empty():
            self._idle.get()
        self._idle.put(None)  # wakes any run() waiting for a worker
        for worker in workers:
            worker.begin_close()
        for worker in workers:
            worker.finish_close()
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _worker_pids(self) -> list[int]:
        """Pids of the worker processes (for tests that kill one)."""
        with self._lock:
            return sorted(worker.pid for worker in self._workers)


def run_fresh(
    code: str,
    config: SandboxConfig | None = None,
    *,
    timeout_s: float | None = None,
    isolation: Isolation = "auto",
) -> ExecResult:
    """Run one program in a brand-new worker process with the pool's limits.

    The naive runner: it pays Python start-up and isolation set-up on every call.
    Use it as a baseline or when a pool is not worth keeping.
    """
    config = config or SandboxConfig()
    timeout = _check_call(code, timeout_s, config)
    started = time.monotonic()
    worker = _Worker(_spec(config, isolation), once=True)
    try:
        worker.start()
        return ExecResult(**worker.run(code, timeout))
    except _WorkerCrashed as exc:
        return _crashed(str(exc), started)
    finally:
        worker.close()

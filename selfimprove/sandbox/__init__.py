"""selfimprove.sandbox: run model-written Python programs in isolated processes.

A program (candidate solution plus its tests) passes when it exits 0::

    from selfimprove.sandbox import SandboxPool, run_fresh

    with SandboxPool(config.sandbox) as pool:        # SandboxConfig limits
        result = pool.run(program)                   # ExecResult
        if not result.ok:
            print(result.status, result.reason)      # "error", "exit code 1: AssertionError: ..."
        results = pool.map(programs)                 # parallel over the workers, order kept
    result = run_fresh(program)                      # one new process per run: the baseline

Statuses: "ok", "error" (non-zero exit, uncaught exception, killed by a signal),
"timeout" (wall clock or CPU time), "memory" (MemoryError under the memory limit),
"output_limit" (stdout plus stderr over the cap), "disk_limit" (files over the
scratch cap, basic mode) and "crashed" (the sandbox failed, not the program). Check ``pool.isolation`` for what was achieved on this host.

Design
------
Each worker is a ``python -I -S _worker.py`` process (stdlib only, started with
PATH and LANG as its whole environment). It isolates itself once, then forks one
child per program: the child confines itself (session, rlimits, uid, no_new_privs)
and ``exec``s the code as ``__main__``; the worker enforces the wall timeout and the
output cap and then kills everything the run left. Forking a warm interpreter costs
about 2-3 ms a run where a fresh ``python`` plus isolation set-up costs 30-60 ms, and
the namespaces are made once per worker, not per run (a network namespace alone
costs about 1 ms to create). Measured per run on 2 cores: fork + exit + wait 0.8 ms,
rlimits + uid + prctl 0.2 ms, fresh tmpfs mount/unmount 0.1 ms; the rest is mostly
copy-on-write page faults. ``python bench/bench_sandbox.py`` compares the pool with
``run_fresh``: about 540 against 30 verifications/s on 2 cores (ratio 17-22).

Guarantees
----------
"namespaces" mode (``pool.isolation["mode"]``; used whenever the kernel allows it):

* Processes: the worker is PID 1 of its own PID namespace. After every run it sends
  SIGKILL to every other process in it, so nothing a run started survives it (a
  ``setsid`` escape included); if the worker dies the kernel kills them all. Host
  processes can be neither seen nor signalled.
* /proc is a fresh procfs of that namespace: the caller and every other host
  process are invisible, so ``/proc/<caller>/environ`` cannot be read.
  (``private_proc`` is False where the kernel refuses that mount, as in many
  unprivileged containers; then the host /proc stays visible, see below.)
* Environment: the child sees PATH, LANG, HOME and TMPDIR only; the caller's
  variables (API keys) never reach the worker, which is exec'd with its own env.
* Network: an empty network namespace (loopback down): no TCP/UDP anywhere, no DNS,
  no abstract Unix sockets of the host. /run is covered by an empty tmpfs, hiding
  daemons' sockets there; a world-writable Unix socket elsewhere stays reachable.
* Files: every mount is read-only for the child. A fresh tmpfs is mounted on /tmp
  and /dev/shm for each run (capped at max_file_bytes + 16 MiB and 10,000 files:
  past that, writes fail with ENOSPC) and unmounted after it, so all it wrote is gone; the run's cwd, HOME and TMPDIR is an empty
  ``/tmp/run-<random>``. Reading is not restricted beyond file permissions.
* As root the child runs as uid/gid 65534 (nobody) with no groups and no
  capabilities, inside a user namespace of its worker, so RLIMIT_NPROC counts only
  that run: at most ``max_processes`` processes and threads, the program included.
  Root-only files (0600, 0700 dirs) are unreadable.
* Without root (needs unprivileged user namespaces) the same holds, except that the
  child keeps the caller's uid with every capability dropped: files only the caller
  can read (``~/.ssh``, ``~/.aws``, a project ``.env``) ARE readable, and without a
  private /proc so is ``/proc/<caller>/environ``.

"basic" mode (no namespaces: the kernel or a container's seccomp forbids unshare,
or ``isolation="basic"``) keeps the rlimits, the wall timeout, the output cap, the
fresh working directory (removed afterwards) and the minimal environment, and:

* as root, the child runs as uid 65534: it cannot write root-owned files or read
  other users' ``/proc/<pid>/environ``, but can leave files in world-writable dirs
  (/tmp, /dev/shm). RLIMIT_NPROC is shared with every uid-65534 process on the host
  (the limit is set to their thread count at worker start plus ``max_processes``).
  Leftover processes are found as orphans (the worker is a child subreaper) and killed.
* network is blocked by a Python audit hook only (sockets, DNS, ctypes, exec,
  subprocess, os.system): compiled code could get around it.
* without root the child has the caller's uid: it can read ``/proc/<caller>/environ``,
  write the caller's files and signal the caller's processes. Not a security boundary.
* disk: the working directory is on the host's disk. The worker measures it every
  20 ms while the run goes and ends the run ("disk_limit") once its files take more
  than max_file_bytes + 16 MiB or number over 10,000; a run overshoots by what it
  writes between two measurements (about 3,000 empty files in tests here). Files written elsewhere (a world-writable /tmp or /dev/shm,
  or the caller's files without root) are not counted and are not removed.

Limits in every mode: the wall timeout and the output cap (enforced by the worker,
which then kills the run), RLIMIT_AS = memory_mb (virtual memory, including the
~20 MB the interpreter maps; tmpfs pages are not counted), RLIMIT_CPU = cpu_time_s,
RLIMIT_NPROC = max_processes (threads count, the program included),
RLIMIT_FSIZE = max_file_bytes, RLIMIT_NOFILE = 256, no core files.

Grading adds two checks on top (``selfimprove.tasks.Grader``, ``build_program``): a
random sentinel printed after the tests, so an early ``exit(0)`` fails, and a strict
comparison in ``assert a == b`` tests, so an answer returning an object whose
``__eq__`` always says yes fails (``tests/sandbox/test_attacks.py`` tries these and
more through the grader). Code written against this harness in particular is not
stopped: it shares the interpreter with the tests, so it can read the sentinel from
its own code object or rebind what the tests call.

Not guaranteed, ever: protection from kernel exploits (the kernel is shared), from
reading world-readable files (the project tree, /etc), CPU or memory fairness between
runs (no cgroups), or side channels. Programs get the standard library only (no
site-packages), and a run as nobody cannot start another Python when the
interpreter lives under a 0700 directory. For code from untrusted outside sources,
for confidential files on the host, or on hosts that only manage "basic" mode, run
the workers inside a container or VM (gVisor, Firecracker) and treat this package
as the inner layer.
"""

from selfimprove.sandbox.pool import SandboxPool, run_fresh
from selfimprove.sandbox.result import ExecResult

__all__ = ["ExecResult", "SandboxPool", "run_fresh"]

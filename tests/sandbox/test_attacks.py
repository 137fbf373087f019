"""Attack programs as model answers, graded through the normal verifier path.

Each attack is the completion of a code task (``add(a, b)``) run by ``Grader`` in
the sandbox pool, once per isolation mode. Every one must come back as a clean
failed verdict (a reason, no exception), leave the host as it was, and leave the
pool able to grade the next answer. The pool-level limits themselves (fork and
memory bombs, CPU, output, file size, no network, environment secrets) are in
``test_sandbox_containment.py``; this file adds the verifier path, tampering with
the test harness, and attacks on the host's processes and files.
"""

from __future__ import annotations

import os
import socket
import textwrap

import pytest

from selfimprove.tasks import Grader
from selfimprove.types import Task

from .conftest import same_uid_without_namespaces

ADD = Task(
    id="attack/add",
    prompt="def add(a, b):\n",
    kind="code",
    tests="assert add(2, 3) == 5\nassert add(-1, 1) == 0\nassert add(10, 5) == 15\n",
    entry_point="add",
    reference="    return a + b\n",
)


def _grade(pool, completion: str):
    return Grader(pool).grade_one(ADD, completion)


def _pool_still_grades(pool) -> None:
    grader = Grader(pool)
    assert grader.grade_one(ADD, ADD.reference).passed
    assert not grader.grade_one(ADD, "    return a - b\n").passed


HARNESS_ATTACKS = {
    # an answer whose result claims to equal anything
    "eq_always_true": """
        class _Yes:
            def __eq__(self, other):
                return True
            def __ne__(self, other):
                return False
        def add(a, b):
            return _Yes()
        """,
    "eq_inside_a_container": """
        class _Yes:
            def __eq__(self, other):
                return True
        class _List(list):
            def __eq__(self, other):
                return True
        def add(a, b):
            return _List()
        """,
    # leave before the tests run, with a success status
    "os_exit_0": "import os\nos._exit(0)\n",
    "sys_exit_0": "import sys\nsys.exit(0)\n",
    "raise_system_exit_in_atexit": """
        import atexit, os
        atexit.register(lambda: os._exit(0))
        def add(a, b):
            raise SystemExit(0)
        """,
    "print_a_guessed_sentinel": """
        import os, sys
        print("__selfimprove_done_0123456789abcdef__")
        print("all tests passed")
        sys.stdout.flush()
        os._exit(0)
        """,
    # turn assertions off, or swallow their failure
    "patch_assertion_error": """
        import builtins
        builtins.AssertionError = type("Quiet", (Exception,), {})
        def add(a, b):
            return 0
        """,
    "excepthook_exits_0": """
        import os, sys
        sys.excepthook = lambda *exc: os._exit(0)
        def add(a, b):
            return 0
        """,
}


@pytest.mark.parametrize("name", sorted(HARNESS_ATTACKS))
def test_tampering_with_the_test_harness_does_not_pass(pool, name):
    verdict = _grade(pool, textwrap.dedent(HARNESS_ATTACKS[name]))
    assert not verdict.passed, f"{name} passed: {verdict.reason}"
    assert verdict.reason
    _pool_still_grades(pool)


CRASHES = {
    "ctypes_null_read": "import ctypes\nctypes.string_at(0)\n",
    "python_recursion": "def add(a, b):\n    return add(a, b)\n",
    "c_stack_overflow": """
        import sys
        sys.setrecursionlimit(10**9)
        def add(a, b):
            return add(a, b)
        """,
    "sigterm_self": "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n",
    "sigstop_self": "import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)\n",
    "abort": "import os\nos.abort()\n",
    "fill_the_disk": """
        i = 0
        while True:
            with open(f"f{i}", "wb") as f:
                f.write(b"x" * (1 << 20))
            i += 1
        """,
    "thread_outlives_the_run": """
        import threading, time
        threading.Thread(target=time.sleep, args=(3600,)).start()
        def add(a, b):
            return a + b
        """,
}


@pytest.mark.parametrize("name", sorted(CRASHES))
def test_crashes_and_hangs_are_clean_failures(pool, name):
    verdict = _grade(pool, textwrap.dedent(CRASHES[name]))
    assert not verdict.passed and verdict.reason
    _pool_still_grades(pool)


def test_killing_the_parent_the_caller_and_everyone_leaves_the_host_alone(pool):
    if same_uid_without_namespaces(pool):
        pytest.skip("without namespaces a same-uid child may signal the caller's processes")
    attack = textwrap.dedent(
        f"""
        import os, signal
        for pid in (os.getppid(), {os.getpid()}, 1, -1):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        def add(a, b):
            return 0
        """
    )
    verdict = _grade(pool, attack)
    assert not verdict.passed
    _pool_still_grades(pool)  # and this test's process is alive to check it


def test_files_outside_the_run_are_neither_read_nor_changed(pool, tmp_path):
    if same_uid_without_namespaces(pool):
        pytest.skip("without namespaces a same-uid child can touch the caller's files")
    home, store = tmp_path / "home", tmp_path / "store"
    home.mkdir()
    store.mkdir()
    secret = home / ".netrc"
    secret.write_text("password hunter2-" + os.urandom(4).hex())
    secret.chmod(0o600)
    database = store / "chroma.sqlite3"
    database.write_bytes(b"SQLite format 3\x00" + os.urandom(64))
    before = {p: p.read_bytes() for p in (secret, database)}
    attack = textwrap.dedent(
        f"""
        import os, shutil
        found = []
        for path in ({str(secret)!r}, {str(database)!r}):
            try:
                found.append(open(path, "rb").read()[:40])
            except OSError:
                pass
            for spoil in (lambda: open(path, "wb").write(b"pwned"), lambda: os.remove(path)):
                try:
                    spoil()
                except OSError:
                    pass
        for folder in ({str(home)!r}, {str(store)!r}):
            shutil.rmtree(folder, ignore_errors=True)
        def add(a, b):
            raise ValueError(repr(found))  # whatever it read lands in the verdict's reason
        """
    )
    verdict = _grade(pool, attack)
    assert not verdict.passed
    assert "hunter2" not in verdict.reason and "SQLite" not in verdict.reason
    assert {p: p.read_bytes() for p in before} == before


def test_network_is_unreachable_over_ipv4_ipv6_and_dns(pool):
    listeners = []
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            server = socket.socket(family)
            server.bind((host, 0))
        except OSError:
            continue  # no IPv6 on this machine
        server.listen()
        server.settimeout(0.1)
        listeners.append((host, server.getsockname()[1], server))
    targets = ", ".join(f"({h!r}, {p})" for h, p, _ in listeners)
    attack = textwrap.dedent(
        f"""
        import socket
        reached = []
        for target in [{targets}]:
            try:
                socket.create_connection(target, timeout=1).sendall(b"pwned")
                reached.append(target)
            except OSError:
                pass
        try:
            socket.getaddrinfo("example.com", 443)
            reached.append("dns")
        except OSError:
            pass
        def add(a, b):
            raise ValueError(f"reached {{reached}}")
        """
    )
    try:
        verdict = _grade(pool, attack)
        for _, _, server in listeners:  # nothing is waiting to be accepted
            with pytest.raises(TimeoutError):
                server.accept()
    finally:
        for _, _, server in listeners:
            server.close()
    assert not verdict.passed
    assert "reached []" in verdict.reason, verdict.reason

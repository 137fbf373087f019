"""How runs are reported: statuses, exit codes, reasons, ordering, the API surface, speed."""

from __future__ import annotations

import os
import signal
import time

import pytest
from pydantic import ValidationError

import selfimprove.sandbox
from selfimprove.config import SandboxConfig
from selfimprove.sandbox import ExecResult, SandboxPool, run_fresh

from .conftest import FAST

ADD = "def add(a, b):\n    return a + b\n"


def test_exports_are_the_documented_api():
    assert selfimprove.sandbox.__all__ == ["ExecResult", "SandboxPool", "run_fresh"]


def test_passing_program_is_ok(pool):
    result = pool.run(ADD + "assert add(1, 2) == 3\nprint('passed')")
    assert result.ok and result.status == "ok"
    assert result.exit_code == 0
    assert result.stdout == "passed\n"
    assert result.reason == "ok"
    assert result.duration_s > 0


def test_assertion_failure_is_an_error_with_the_message(pool):
    result = pool.run(ADD + "assert add(1, 1) == 3, 'expected 3'")
    assert not result.ok
    assert result.status == "error" and result.exit_code == 1
    assert result.reason == "exit code 1: AssertionError: expected 3"
    assert 'File "<solution>", line 3' in result.stderr
    assert "assert add(1, 1) == 3" in result.stderr  # source lines in the traceback


def test_bare_assertion_reason_names_the_failing_statement(pool):
    result = pool.run(ADD + "assert add(2, 2) == 5")
    assert result.reason == "exit code 1: AssertionError: assert add(2, 2) == 5"


@pytest.mark.parametrize(
    ("code", "status", "exit_code"),
    [
        ("import sys; sys.exit(3)", "error", 3),
        ("import sys; sys.exit(0)", "ok", 0),
        ("import sys; sys.exit('bad input')", "error", 1),
        ("exit(4)", "error", 4),  # site's exit() exists even under python -S
        ("import os; os._exit(0)\nassert False", "ok", 0),  # reported faithfully
        ("import os; os._exit(7)", "error", 7),
    ],
)
def test_exit_status_is_reported_faithfully(pool, code, status, exit_code):
    result = pool.run(code)
    assert (result.status, result.exit_code) == (status, exit_code)


def test_syntax_error_is_an_error(pool):
    result = pool.run("def f(:\n    pass")
    assert result.status == "error"
    assert "SyntaxError" in result.reason


def test_killed_by_signal_has_negative_exit_code(pool):
    result = pool.run("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)")
    assert result.status == "error"
    assert result.exit_code == -signal.SIGSEGV
    assert result.reason == "killed by SIGSEGV"


def test_program_runs_as_main_with_working_dataclasses(pool):
    code = (
        "from dataclasses import dataclass\nimport pickle\n"
        "@dataclass\nclass P:\n    x: int\n"
        "assert __name__ == '__main__'\n"
        "assert pickle.loads(pickle.dumps(P(1))) == P(1)\n"
        "import json, encodings.idna, unittest.mock\n"  # lazy stdlib imports work
    )
    assert pool.run(code).ok


def test_map_preserves_order(pool):
    codes = [f"import time\ntime.sleep({(7 - i) % 4} * 0.01)\nprint({i})" for i in range(12)]
    results = pool.map(codes)
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(12)]
    assert pool.map([]) == []


def test_bad_arguments_name_the_value(pool):
    with pytest.raises(ValueError, match="-1"):
        pool.run("pass", timeout_s=-1)
    with pytest.raises(TypeError, match="bytes"):
        pool.run(b"pass")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'sometimes'"):
        SandboxPool(FAST, isolation="sometimes")  # type: ignore[arg-type]


def test_closed_pool_refuses_work():
    pool = SandboxPool(SandboxConfig(workers=1))
    pool.close()
    pool.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        pool.run("pass")
    with pytest.raises(RuntimeError, match="closed"):
        pool.map(["pass"])


def test_run_fresh_reports_like_the_pool():
    assert run_fresh(ADD + "assert add(1, 2) == 3").ok
    failed = run_fresh(ADD + "assert add(1, 2) == 4, 'nope'", FAST)
    assert failed.reason == "exit code 1: AssertionError: nope"
    assert run_fresh("while True: pass", FAST, timeout_s=0.5).status == "timeout"


def test_a_worker_killed_externally_is_replaced(pool):
    before = pool._worker_pids()
    for pid in before:
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.05)
    assert all(r.ok for r in pool.map(["print(1)"] * 4))
    assert not set(pool._worker_pids()) & set(before)


def test_pool_is_much_faster_than_a_fresh_process_per_run(pool):
    codes = [ADD + f"assert add({i}, 1) == {i + 1}" for i in range(20)]
    pool.map(codes[:2])  # warm
    start = time.perf_counter()
    assert all(r.ok for r in pool.map(codes))
    pooled = time.perf_counter() - start
    start = time.perf_counter()
    assert all(run_fresh(code, FAST).ok for code in codes)
    fresh = time.perf_counter() - start
    # Measured about 30x on 2 cores; 3x leaves room for a slow, noisy CI machine.
    assert fresh / pooled > 3, f"pool {pooled:.3f}s vs fresh {fresh:.3f}s"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"status": "ok", "exit_code": 0}, "ok"),
        ({"status": "timeout", "detail": "timeout after 5s"}, "timeout after 5s"),
        (
            {"status": "memory", "exit_code": 1, "detail": "memory limit (512 MB) exceeded"},
            "memory limit (512 MB) exceeded",
        ),
        ({"status": "error", "exit_code": 2}, "exit code 2"),
        ({"status": "error", "exit_code": -9}, "killed by SIGKILL"),
        (
            {"status": "error", "exit_code": 1, "stderr": "Traceback...\nValueError: x\n\n"},
            "exit code 1: ValueError: x",
        ),
    ],
)
def test_reason_texts(fields, reason):
    result = ExecResult(
        **{"exit_code": None, "stdout": "", "stderr": "", "duration_s": 0.1, **fields}
    )
    assert result.reason == reason
    assert result.ok is (fields["status"] == "ok")


def test_result_is_frozen():
    result = ExecResult(status="ok", exit_code=0, stdout="", stderr="", duration_s=0.0)
    with pytest.raises(ValidationError):
        result.status = "error"  # type: ignore[misc]

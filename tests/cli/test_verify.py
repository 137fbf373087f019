"""`selfimprove verify`: JSON lines per solution, a summary, clear errors for bad files."""

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from selfimprove.cli import app

FIXTURES = Path(__file__).parents[1] / "tasks" / "fixtures"


def _solutions(tmp_path, rows):
    path = tmp_path / "solutions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_verify_prints_a_verdict_per_solution_and_a_summary(tmp_path):
    solutions = _solutions(
        tmp_path,
        [
            {"task_id": "HumanEval/0", "completion": "    return a + b\n"},
            {"task_id": "HumanEval/1", "completion": "def is_even(n):\n    return n % 2 == 1\n"},
        ],
    )
    result = CliRunner().invoke(
        app, ["verify", str(FIXTURES / "humaneval.jsonl"), "--solutions", str(solutions), "--json"]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0] == {"task_id": "HumanEval/0", "passed": True, "reason": "all tests passed"}
    assert lines[1]["task_id"] == "HumanEval/1" and lines[1]["passed"] is False
    assert "AssertionError" in lines[1]["reason"]
    assert lines[2] == {"summary": {"total": 2, "passed": 1, "failed": 1, "pass_rate": 0.5}}


def test_verify_answer_tasks_without_code(tmp_path):
    solutions = _solutions(tmp_path, [{"task_id": "gsm8k/1", "completion": "3 + 4 = 7"}])
    result = CliRunner().invoke(
        app, ["verify", str(FIXTURES / "gsm8k.jsonl"), "-s", str(solutions), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[0])["passed"] is True


def test_unknown_task_id_names_the_line(tmp_path):
    solutions = _solutions(
        tmp_path,
        [
            {"task_id": "HumanEval/0", "completion": "x"},
            {"task_id": "HumanEval/9", "completion": "x"},
        ],
    )
    result = CliRunner().invoke(
        app, ["verify", str(FIXTURES / "humaneval.jsonl"), "-s", str(solutions)]
    )
    assert result.exit_code == 2
    assert "solutions.jsonl:2" in result.stderr and "'HumanEval/9'" in result.stderr


def test_broken_file_is_a_one_line_error_without_traceback(tmp_path):
    bad = tmp_path / "tasks.jsonl"
    bad.write_text('{"id": "a", "prompt": "x"}\n{not json}\n')
    solutions = _solutions(tmp_path, [{"task_id": "a", "completion": "1"}])
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "selfimprove.cli",
            "verify",
            str(bad),
            "--solutions",
            str(solutions),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "tasks.jsonl:2: invalid JSON" in proc.stderr
    assert "Traceback" not in proc.stderr

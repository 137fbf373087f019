"""Verifiers on handmade answers, and code grading through the real sandbox."""

import pytest

from selfimprove.sandbox import SandboxPool
from selfimprove.tasks import Grader, build_program, check_answer, load_tasks
from selfimprove.types import Task, Verdict

FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures"


def _answer_task(answer, **meta):
    return Task(id="t", prompt="q", answer=answer, metadata=meta)


def test_number_match_tolerates_format_and_rejects_wrong():
    task = _answer_task("2400")
    assert check_answer(task, "It costs 2,400 dollars.").passed
    assert check_answer(task, "2400.0").passed
    verdict = check_answer(task, "2399")
    assert not verdict.passed and "expected 2400" in verdict.reason


def test_choice_rejects_an_answer_naming_both_numbers():
    task = _answer_task("95", match="choice", choices=["64", "95"])
    assert check_answer(task, "95").passed
    assert not check_answer(task, "64 is 95.").passed
    assert not check_answer(task, "64").passed


def test_exact_match_respects_case_flag():
    upper = _answer_task("APPLE", match="exact")
    assert check_answer(upper, "The word in uppercase is 'APPLE'.").passed
    assert not check_answer(upper, "apple").passed
    letter = _answer_task("a", match="exact", case_sensitive=False)
    assert check_answer(letter, "The first letter of the word 'apple' is 'A'.").passed


def test_unknown_match_mode_is_a_failed_verdict_not_a_crash():
    verdict = check_answer(_answer_task("1", match="fuzzy"), "1")
    assert not verdict.passed and "fuzzy" in verdict.reason


def test_build_program_appends_completion_to_prompt_unless_it_defines_the_entry_point():
    task = load_tasks(FIXTURES / "humaneval.jsonl")[0]
    body = build_program(task, "    return a + b\n")
    assert body.startswith(task.prompt) and body.rstrip().endswith("check(add)")
    full = build_program(task, "```python\ndef add(a, b):\n    return b + a\n```")
    assert not full.startswith(task.prompt) and "def add(a, b):\n    return b + a" in full


@pytest.fixture(scope="module")
def grader():
    with SandboxPool() as pool:
        yield Grader(
            pool,
            custom={"has_cat": lambda t, c: Verdict.ok() if "cat" in c else Verdict.fail("no cat")},
        )


def test_humaneval_reference_solutions_pass_and_wrong_ones_fail(grader):
    tasks = load_tasks(FIXTURES / "humaneval.jsonl")
    good = grader.grade(tasks, [t.reference for t in tasks])
    assert all(v.passed for v in good), good
    bad = grader.grade(tasks, ["    return a - b\n", "    return n % 2 == 1\n"])
    assert not any(v.passed for v in bad)
    assert "AssertionError" in bad[0].reason


def test_mbpp_references_pass(grader):
    tasks = load_tasks(FIXTURES / "mbpp.jsonl")
    assert all(v.passed for v in grader.grade(tasks, [t.reference for t in tasks]))
    assert not grader.grade_one(tasks[1], "def reverse_string(s):\n    return s").passed


def test_program_that_exits_zero_before_the_tests_does_not_pass(grader):
    task = load_tasks(FIXTURES / "selfimprove.jsonl")[2]
    assert grader.grade_one(task, "def double(x):\n    return 2 * x").passed
    cheat = "import os\ndef double(x):\n    return 0\nos._exit(0)"
    verdict = grader.grade_one(task, cheat)
    assert not verdict.passed, verdict


def test_syntax_error_and_timeout_are_clean_failures(grader):
    task = load_tasks(FIXTURES / "selfimprove.jsonl")[2]
    assert not grader.grade_one(task, "def double(x) return").passed
    hang = "def double(x):\n    while True:\n        pass"
    verdict = grader.grade_one(task, hang)
    # wall clock and CPU time race here (both 5 s): either limit may be the one that fires
    assert not verdict.passed
    assert "timeout" in verdict.reason or "cpu time limit" in verdict.reason, verdict.reason


def test_custom_verifier_by_name_and_its_failures(grader):
    task = Task(id="c", prompt="say cat", metadata={"verifier": "has_cat"})
    assert grader.grade_one(task, "a cat").passed
    assert grader.grade_one(task, "a dog").reason == "no cat"
    unknown = Task(id="u", prompt="x", metadata={"verifier": "nope"})
    assert "not registered" in grader.grade_one(unknown, "x").reason
    boom = Grader(custom={"boom": lambda t, c: 1 / 0})
    verdict = boom.grade_one(Task(id="b", prompt="x", metadata={"verifier": "boom"}), "x")
    assert not verdict.passed and "ZeroDivisionError" in verdict.reason


def test_grade_preserves_order_across_mixed_kinds(grader):
    tasks = load_tasks(FIXTURES / "selfimprove.jsonl")
    verdicts = grader.grade(tasks, ["42", "cat", "def double(x):\n    return x + x"])
    assert [v.passed for v in verdicts] == [True, False, True]


def test_strict_asserts_refuse_answers_that_fake_equality_but_keep_honest_ones(grader):
    from selfimprove.types import Task

    def task(tests: str) -> Task:
        return Task(id="t", prompt="x", kind="code", entry_point="f", tests=tests)

    point = "class P:\n    def __init__(self, x): self.x = x\n    def __eq__(self, o): return self.x == o.x\n"
    honest = [
        ("def f(): return 3", "assert f() == 3.0"),  # int vs float, as plain == says
        ("def f(): return True", "assert f() == 1"),
        ("def f(): return (1, [2, {'a': 3}])", "assert f() == (1, [2, {'a': 3}])"),
        (point + "def f(): return P(1)", "assert f() == P(1)"),  # the program's own class
        ("def f(): return 2", "assert f() == 2, 'f() should be 2'"),
    ]
    for code, tests in honest:
        assert grader.grade_one(task(tests), code).passed, (code, tests)
    fake = "class Y:\n    def __eq__(self, o): return True\n"
    for code in (fake + "def f(): return Y()", fake + "def f(): return [Y(), Y()]"):
        verdict = grader.grade_one(task("assert f() == [1, 2]"), code)
        assert not verdict.passed
        assert verdict.reason.endswith("AssertionError: assert f() == [1, 2]")  # as before
    verdict = grader.grade_one(task("assert f() == 2, 'f() should be 2'"), "def f(): return 1")
    assert verdict.reason.endswith("AssertionError: f() should be 2")  # a message is kept

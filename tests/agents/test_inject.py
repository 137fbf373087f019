"""Error injection on real verified solutions: edits are small, and every kept one fails."""

from __future__ import annotations

import difflib
import random
import re

import pytest

from selfimprove.agents.inject import (
    OPERATORS,
    inject_errors,
    inject_errors_batch,
    operators_for,
    propose,
    yields,
)
from selfimprove.tasks import builtin_tasks
from selfimprove.types import Task

_TOKEN = re.compile(r"\w+|\S")


def _changed_tokens(before: str, after: str) -> int:
    a, b = _TOKEN.findall(before), _TOKEN.findall(after)
    ops = difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes()
    return sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in ops if tag != "equal")


def _reference(task: Task) -> str:
    return task.reference if task.kind == "code" else task.answer


@pytest.mark.parametrize("suite", ["code", "arithmetic", "compare", "strings"])
def test_operators_break_most_builtin_references(suite, grader):
    tasks = builtin_tasks(suite, split="train", n=40)
    references = [_reference(t) for t in tasks]
    assert all(v.passed for v in grader.grade(tasks, references))  # truly verified solutions

    results = inject_errors_batch(tasks, references, grader, per_answer=2, seed=1)

    with_one = sum(bool(r.injections) for r in results)
    assert with_one >= 0.9 * len(tasks), f"{suite}: only {with_one}/{len(tasks)} broken"
    kept = [
        (t, ref, i)
        for t, ref, r in zip(tasks, references, results, strict=True)
        for i in r.injections
    ]
    regraded = grader.grade([t for t, _, _ in kept], [i.text for _, _, i in kept])
    assert not any(v.passed for v in regraded)  # every returned injection really fails
    for _, ref, injection in kept:
        assert injection.text != ref and injection.reason and injection.description
        limit = 25 if injection.operator == "drop_branch" else 6
        assert _changed_tokens(ref, injection.text) <= limit, injection
    table = yields(results)
    assert set(table) <= set(OPERATORS)
    assert all(0 < failing <= tried for tried, failing in table.values())
    print(f"\n{suite}: {with_one}/{len(tasks)} references broken; (tried, failing) {table}")


def test_inject_errors_returns_at_most_per_answer_failing_edits(grader):
    task = builtin_tasks("code", split="train", n=1)[0]
    injections = inject_errors(task, task.reference, grader, per_answer=2, rng=random.Random(3))
    assert len(injections) == 2
    assert len({i.operator for i in injections}) == 2
    assert not any(v.passed for v in grader.grade([task] * 2, [i.text for i in injections]))


def _code_task(body: str, tests: str, name: str = "f") -> Task:
    return Task(
        id="t",
        prompt=f"Write `{name}`.",
        kind="code",
        tests=tests,
        entry_point=name,
        reference=body,
    )


def _all_edits(operator: str, task: Task, text: str, tries: int = 30) -> set[str]:
    found = set()
    for seed in range(tries):
        injection = OPERATORS[operator](task, text, random.Random(seed))
        if injection is not None:
            assert injection.operator == operator
            found.add(injection.text)
    return found


def test_off_by_one_moves_a_range_stop():
    code = "def total(n):\n    return sum(i for i in range(n))\n"
    edits = _all_edits("off_by_one", _code_task(code, "", "total"), code)
    assert edits == {
        code.replace("range(n)", "range(n + 1)"),
        code.replace("range(n)", "range(n - 1)"),
    }
    inclusive = "def total(n):\n    return sum(range(1, n + 1))\n"
    assert _all_edits("off_by_one", _code_task(inclusive, ""), inclusive) == {
        inclusive.replace("n + 1", "n")
    }


def test_off_by_one_is_verified_against_the_tests(grader):
    code = "def total(n):\n    return sum(i for i in range(n))\n"
    task = _code_task(code, "assert total(4) == 6\nassert total(0) == 0", "total")
    [injection] = inject_errors(task, code, grader, operators=["off_by_one"], per_answer=3)
    assert "range(n + 1)" in injection.text or "range(n - 1)" in injection.text
    assert "AssertionError" in injection.reason


def test_flip_comparison_turns_less_than_around_and_keeps_the_rest():
    text = "Here you go:\n```python\n# keep small ones\ndef f(xs):\n    return [x for x in xs if x < 5]\n```\nDone."
    [edited] = _all_edits("flip_comparison", _code_task("", ""), text)
    assert edited == text.replace("x < 5", "x > 5")
    assert _all_edits("off_by_one", _code_task("", ""), text) == {text.replace("x < 5", "x <= 5")}


def test_wrong_operator_in_code_and_in_arithmetic_answers():
    code = "def f(a, b):\n    return a + b\n"
    assert _all_edits("wrong_operator", _code_task(code, ""), code) == {code.replace("+", "-")}
    task = builtin_tasks("arithmetic", split="train", n=2)[1]  # level 2: "a + b"
    a, b = (int(x) for x in task.metadata["expression"].split(" + "))
    values = {int(t) for t in _all_edits("wrong_operation", task, task.answer)}
    assert values == {a - b, a * b}
    shown = f"{a} + {b} = {a + b}"
    edits = _all_edits("wrong_operation", task, shown)
    assert edits == {f"{a} - {b} = {a - b}", f"{a} * {b} = {a * b}"}


def test_wrong_variable_only_uses_names_in_scope():
    code = "def f(xs):\n    return [x * 2 for x in xs]\n"
    edits = _all_edits("wrong_variable", _code_task(code, ""), code)
    assert edits == {code.replace("x * 2", "xs * 2")}  # `x` is not visible where `xs` is read


def test_drop_branch_and_wrong_return_on_an_if_chain():
    code = "def g(n):\n    if n > 9:\n        return 'big'\n    elif n > 4:\n        return 'mid'\n    return 'small'\n"
    dropped = _all_edits("drop_branch", _code_task(code, ""), code)
    assert code.replace("    elif n > 4:\n        return 'mid'\n", "") in dropped
    returns = _all_edits("wrong_return", _code_task(code, ""), code)
    assert code.replace("return 'mid'", "return n") in returns


def test_an_indented_body_without_its_header_still_gets_edits():
    body = "    return n + 1\n"
    assert _all_edits("wrong_operator", _code_task(body, ""), body) == {"    return n - 1\n"}


def test_code_that_does_not_parse_falls_back_to_text_edits():
    broken = "def f(n) return n < 3"
    assert _all_edits("flip_comparison", _code_task("", ""), broken) == {"def f(n) return n > 3"}
    assert _all_edits("wrong_variable", _code_task("", ""), broken) == set()


def test_answer_operators_fit_their_suites():
    compare, strings = (
        builtin_tasks("compare", split="train", n=1)[0],
        builtin_tasks("strings", split="train", n=1)[0],
    )
    [picked] = _all_edits("other_choice", compare, compare.answer)
    assert picked in compare.metadata["choices"] and picked != compare.answer
    upper = strings  # level 1: uppercase, case-sensitive
    assert all(
        e.lower() == upper.answer.lower() and e != upper.answer
        for e in _all_edits("wrong_case", upper, upper.answer)
    )
    assert set(operators_for(compare)) == set(operators_for(strings))  # the answer family
    assert set(operators_for(_code_task("", ""))) == {
        "off_by_one", "flip_comparison", "wrong_operator", "wrong_variable",
        "drop_branch", "wrong_return", "wrong_constant",
    }  # fmt: skip


@pytest.mark.parametrize(
    "text", ["", "```", "```python\n", "def (", "\x00", "∑ é 😀", "1e309", "-", "a" * 3000]
)
def test_operators_never_raise_on_odd_text(text):
    tasks = [
        builtin_tasks(s, split="train", n=3)[-1]
        for s in ("arithmetic", "compare", "strings", "code")
    ]
    for task in tasks:
        for name, operator in OPERATORS.items():
            injection = operator(task, text, random.Random(0))
            assert injection is None or (injection.operator == name and injection.text != text)
        propose(task, text, random.Random(0))


def test_unknown_operator_names_are_refused():
    with pytest.raises(ValueError, match="'typo'"):
        operators_for(_code_task("", ""), ["typo"])


def test_code_after_prose_is_found_without_fences():
    text = "Sure! Here it is.\ndef f(a, b):\n    return a * b\n"
    assert _all_edits("wrong_operator", _code_task("", ""), text) == {
        text.replace("a * b", "a + b")
    }


def test_a_restated_answer_is_changed_everywhere_after_the_work():
    task = builtin_tasks("arithmetic", split="train", n=5)[4]  # level 5: "a + b - c"
    expression, answer = task.metadata["expression"], task.answer
    text = f"{expression} = {answer}\nThe answer is {answer}."
    for edited in _all_edits("change_value", task, text) | _all_edits("delete_term", task, text):
        work, final = edited.split("\n")
        new = final.removeprefix("The answer is ").removesuffix(".")
        assert new != answer and work.endswith(f"= {new}")


def test_wrong_substitution_uses_another_known_quantity_and_reworks_the_rest(grader):
    task = Task(
        id="s", prompt="What is 45 + 23 - 17? Answer with just the number.", answer="51",
        metadata={"match": "number", "expression": "45 + 23 - 17"},
    )  # fmt: skip
    text = "45 + 23 = 68, 68 - 17 = 51. The answer is 51."
    edits = _all_edits("wrong_substitution", task, text, tries=60)
    assert edits == {
        "45 + 17 = 62, 62 - 17 = 45. The answer is 45.",  # the prompt's 17 for 23
        "17 + 23 = 40, 40 - 17 = 23. The answer is 23.",
        "23 + 23 = 46, 46 - 17 = 29. The answer is 29.",
        "45 + 45 = 90, 90 - 17 = 73. The answer is 73.",
        "45 + 23 = 68, 45 - 17 = 28. The answer is 28.",  # carried 45, not the sum 68
        "45 + 23 = 68, 23 - 17 = 6. The answer is 6.",
        "45 + 23 = 68, 68 - 23 = 45. The answer is 45.",
        "45 + 23 = 68, 68 - 45 = 23. The answer is 23.",
    }  # not "68 - 68 = 0": a zero out of nowhere gives the error away
    for edited in edits:
        assert _changed_tokens(text, edited) <= 5
        for a, op, b, result in re.findall(r"(\d+) ([-+]) (\d+) = (\d+)", edited):
            assert int(a) + (1 if op == "+" else -1) * int(b) == int(result)  # still consistent
    assert not any(v.passed for v in grader.grade([task] * len(edits), sorted(edits)))
    # a bare answer is reworked from the task's expression
    assert _all_edits("wrong_substitution", task, "51", tries=60) == {"23", "29", "45", "73"}


def test_wrong_substitution_needs_a_second_quantity_and_numeric_working():
    same = Task(id="t", prompt="What is 4 + 4?", answer="8", metadata={"expression": "4 + 4"})
    assert _all_edits("wrong_substitution", same, "4 + 4 = 8") == set()  # nothing else to use
    word = builtin_tasks("strings", split="train", n=1)[0]
    assert _all_edits("wrong_substitution", word, word.answer) == set()
    task = Task(id="u", prompt="What is 30 + 12?", answer="42", metadata={"expression": "30 + 12"})
    assert _all_edits("wrong_substitution", task, "I think 40 + 2 = 42") == {
        "I think 12 + 2 = 14",
        "I think 30 + 2 = 32",
        "I think 40 + 12 = 52",
        "I think 40 + 30 = 70",
    }  # the model's own working: the prompt's numbers stand in for its numbers

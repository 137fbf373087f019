"""Self-edit injection: the model's small edits of real references are kept only if they fail."""

from __future__ import annotations

import re

import pytest

from selfimprove.agents.inject import yields
from selfimprove.agents.self_edit import (
    PROMPT_PATH,
    SELF_EDIT_ERRORS,
    ChatTemplate,
    changed_tokens,
    self_edit_errors,
)
from selfimprove.tasks import builtin_tasks
from selfimprove.testing import FakeChatModel

CODE = builtin_tasks("code", split="train", n=40)
MULTIPLES = [t for t in CODE if " == 0" in t.reference and "sum_multiples" in t.reference]
ARITHMETIC = builtin_tasks("arithmetic", split="train", n=5)


def _asked(prompt: str) -> tuple[str, str]:
    """The answer shown in a self-edit request and the error it names."""
    answer = prompt.split("Correct answer:\n", 1)[1].split("\n\nRewrite the answer", 1)[0]
    error = re.search(r"of this kind:\n(\w+):", prompt).group(1)
    return answer, error


def _flip_equality(prompt: str, i: int) -> str:
    """A real small edit: the first ``==`` of the code (or the last digit of an answer) changed."""
    answer, _ = _asked(prompt)
    if answer.startswith("```python"):
        return answer.replace(" == ", " != ", 1)  # generation stops at the closing fence
    return answer[:-1] + str((int(answer[-1]) + 1) % 10)


def test_a_small_real_edit_is_kept_verified_and_named(grader):
    code = MULTIPLES[0]
    fenced = f"Here you go:\n```python\n{code.reference}```\nDone."
    task_list = [code, MULTIPLES[1], ARITHMETIC[4]]
    corrects = [fenced, MULTIPLES[1].reference, ARITHMETIC[4].answer]
    assert all(v.passed for v in grader.grade(task_list, corrects))
    model = FakeChatModel(_flip_equality)

    results = self_edit_errors(model, task_list, corrects, grader, seed=0)

    asked = [_asked(p[-1]["content"])[1] for call in model.calls for p in call.prompts]
    assert [len(call.prompts) for call in model.calls] == [2, 1]  # code, then answers
    assert {call.seed for call in model.calls} == {0}
    assert {call.stop[0] for call in model.calls} == {"\n```", "\n\n"}  # the tasks' settings
    [a], [b], [c] = (r.injections for r in results)
    assert a.text == fenced.replace(" == ", " != ", 1)  # edited in place, prose kept
    assert b.text == MULTIPLES[1].reference.replace(" == ", " != ", 1)  # bare stays bare
    assert c.text == corrects[2][:-1] + str((int(corrects[2][-1]) + 1) % 10)
    assert [i.operator for i in (a, b, c)] == [f"self_edit:{e}" for e in asked]
    assert asked[0] in SELF_EDIT_ERRORS["code"] and asked[2] in SELF_EDIT_ERRORS["answer"]
    assert "AssertionError" in a.reason and "expected" in c.reason
    assert asked[0] in a.description and "1 tokens changed" in a.description
    assert not any(v.passed for v in grader.grade(task_list, [a.text, b.text, c.text]))
    assert all(r.tried == r.failing == {r.injections[0].operator: 1} for r in results)
    # the request names the error and what it is, and shows the code fenced
    request = model.calls[0].prompts[0][-1]["content"]
    assert f"{asked[0]}: {SELF_EDIT_ERRORS['code'][asked[0]]}" in request
    assert code.prompt in request and f"```python\n{code.reference}```" in request
    # nothing that small passes a limit of zero changed tokens
    strict = self_edit_errors(model, task_list, corrects, grader, max_changed_tokens=0)
    assert [r.injections for r in strict] == [[], [], []]
    assert all(r.failing == {} and sum(r.tried.values()) == 1 for r in strict)


def test_unchanged_rewritten_garbage_and_broken_edits_are_not_kept(grader):
    task = MULTIPLES[0]
    ref = task.reference
    rewrite = (
        "```python\ndef sum_multiples(xs):\n    total = 0\n    for x in xs:\n"
        "        if x % 7 == 1:\n            total += x\n    return total\n```"
    )
    replies = {
        0: f"```python\n{ref}```",  # unchanged
        1: rewrite,  # fails its tests, but is no planted error
        2: "I cannot plant errors in code.",
        3: "",
        4: f"```python\n{ref.replace('sum(', 'sum', 1)}```",  # one token, but a SyntaxError
        5: f"```python\n{ref.replace('x % ', '(x) % ', 1)}```",  # small, still correct
    }
    model = FakeChatModel(lambda prompt, i: replies[i])
    assert changed_tokens(ref, rewrite) > 8

    results = self_edit_errors(model, [task] * 6, [ref] * 6, grader)

    assert [r.injections for r in results] == [[]] * 6
    assert sum(sum(r.tried.values()) for r in results) == 6
    assert all(r.failing == {} for r in results)
    table = yields(results)
    assert all(
        name.startswith("self_edit:") and failing == 0 for name, (_, failing) in table.items()
    )


def test_per_answer_asks_for_different_errors_and_a_seed_repeats_them(grader):
    tasks, corrects = ARITHMETIC, [t.answer for t in ARITHMETIC]

    def errors_asked(seed: int, n: int = 5, per_answer: int = 2) -> list[str]:
        model = FakeChatModel("no idea")
        self_edit_errors(model, tasks[:n], corrects[:n], grader, per_answer=per_answer, seed=seed)
        return [_asked(p[-1]["content"])[1] for p in model.prompts]

    first = errors_asked(0)
    assert len(first) == 10 and all(first[k] != first[k + 1] for k in range(0, 10, 2))
    assert errors_asked(0) == first
    assert errors_asked(1) != first
    assert errors_asked(0, n=1) == first[:2]  # an answer's errors do not depend on the batch


def test_errors_can_be_restricted_and_unknown_names_are_refused(grader):
    tasks = [MULTIPLES[0], ARITHMETIC[0]]
    corrects = [MULTIPLES[0].reference, ARITHMETIC[0].answer]
    model = FakeChatModel(_flip_equality)
    results = self_edit_errors(
        model, tasks, corrects, grader, errors=["flipped_comparison"], per_answer=3
    )
    assert [r.tried for r in results] == [{"self_edit:flipped_comparison": 3}, {}]
    assert len(results[0].injections) == 1  # three identical greedy edits: kept once
    assert results[0].failing == {"self_edit:flipped_comparison": 3}
    with pytest.raises(ValueError, match="'typo'"):
        self_edit_errors(model, tasks, corrects, grader, errors=["typo"])
    assert self_edit_errors(model, [], [], grader) == []


def test_changed_tokens_counts_word_and_symbol_tokens():
    assert changed_tokens("x < 5", "x <= 5") == 1
    assert changed_tokens("a  +\nb", "a + b") == 0
    assert changed_tokens("return a + b", "return b") == 2
    assert changed_tokens("", "one two") == 2


def test_the_prompt_file_parses_and_values_with_braces_stay_as_they_are():
    prompt = ChatTemplate.load(PROMPT_PATH)
    assert [role for role, _ in prompt.messages] == ["user"]
    assert set(prompt.reply) == {"code", "answer"}
    [message] = prompt.render(ARITHMETIC[0], answer="{x}", error="{y}", description="d")
    assert "{x}" in message["content"] and "{y}: d." in message["content"]
    assert message["content"].endswith(prompt.reply["answer"])

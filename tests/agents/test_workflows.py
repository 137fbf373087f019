"""Workflow induction: values abstracted, the routine kept (it still solves new tasks), teacher
JSON used and garbage falling back, and the student prompt."""

from __future__ import annotations

import ast
import json
import re

import pytest

from selfimprove.agents.workflows import (
    Workflow,
    induce_workflows,
    workflow_prompt,
    workflow_scope,
)
from selfimprove.models.base import ModelError
from selfimprove.tasks import builtin_tasks
from selfimprove.tasks.code import TEMPLATES
from selfimprove.testing import FakeChatModel
from selfimprove.types import Task

CODE = builtin_tasks("code", split="train", n=60)
ORDINALS = {"second": "2", "third": "3", "fourth": "4"}


def _constants(task: Task) -> dict[str, object]:
    """The values drawn for a code task (its split key is ``name:[(constant, value), ...]``)."""
    return dict(ast.literal_eval(task.metadata["split_key"].split(":", 1)[1]))


def _group(index: int, seen: bool) -> str:
    return f"(?P=g{index})" if seen else f"(?P<g{index}>.+?)"


def _instantiate(flow: Workflow, task: Task) -> str | None:
    """The workflow's solution with its placeholders bound from ``task``'s statement."""
    statement = flow.text.split("\n", 1)[0].removeprefix("Task: ")
    statement = re.sub(r"(<[A-Z]+\d*>)-th", r"\1", statement)  # "<A>-th" stands for "third"
    parts = re.split(r"(<[A-Z]+\d*>)", statement)
    names = list(dict.fromkeys(parts[1::2]))
    pattern = "".join(
        re.escape(p) if k % 2 == 0 else _group(names.index(p), p in parts[1:k:2])
        for k, p in enumerate(parts)
    )
    found = re.fullmatch(pattern, task.prompt.split("\n")[0])
    if found is None:
        return None
    solution = flow.text.split("```python\n", 1)[1].split("\n```", 1)[0]
    for i, name in enumerate(names):
        value = found[f"g{i}"]
        solution = solution.replace(name, ORDINALS.get(value, value))
    return solution


def test_scopes_name_the_kind_of_task():
    count = next(t for t in CODE if t.metadata["template"] == "count_greater")
    level3 = builtin_tasks("arithmetic", split="train", n=3)[2]
    custom = Task(id="c1", prompt="What is the capital of France?", answer="Paris")
    assert workflow_scope(count) == "code:count_greater"
    assert workflow_scope(level3) == "arithmetic:3"
    assert workflow_scope(custom) == "custom:answer"


def test_code_references_lose_their_constants_and_keep_a_routine_that_solves_new_tasks():
    flows = induce_workflows(CODE, [t.reference for t in CODE], origin="offline", round=2)
    by_scope = {w.scope: w for w in flows}
    assert set(by_scope) == {f"code:{t.metadata['template']}" for t in CODE}
    assert all(w.origin == "offline" and w.round == 2 and w.inducer == "template" for w in flows)
    tasks = {t.id: t for t in CODE}
    for flow in flows:
        sources = [tasks[i] for i in flow.source_task_ids]
        assert flow.text.startswith("Task: ") and "```python\ndef " in flow.text
        assert re.search(r"<(A|CH)>", flow.text), flow.text
        for name in _constants(sources[0]):
            values = {repr(_constants(t)[name]) for t in sources}
            if len(sources) > 1 and len(values) == 1:
                continue  # the same in every example: routine, kept on purpose
            for value in values:
                assert not re.search(rf"(?<![\w.]){re.escape(value)}(?![\w])", flow.text), (
                    f"{flow.scope}: constant {name}={value} left in {flow.text!r}"
                )
    # the routine is kept: filled in with an unseen task's values, it passes that task's tests
    heldout = builtin_tasks("code", split="heldout", n=100)
    solved = tried = 0
    for task in heldout:
        flow = by_scope.get(workflow_scope(task))
        code = _instantiate(flow, task) if flow else None
        if code is None:
            continue
        tried += 1
        namespace: dict = {}
        exec(code + "\n" + task.tests, namespace)  # our own reference code and tests
        solved += 1
    assert tried >= 90 and solved == tried


def test_values_constant_across_a_scope_are_routine_and_the_majority_form_wins():
    template = next(t for t in TEMPLATES if t.name == "count_greater")

    def task(k: int) -> Task:
        describe = template.describe.format(k=k)
        return Task(
            id=f"cg{k}",
            prompt=f"Write a Python function `count_greater(xs)` that {describe}.",
            kind="code",
            reference=template.reference.format(k=k),
            suite="code",
            metadata={"template": "count_greater"},
        )

    # k=1 also hits the 1 of `sum(1 for ...)`: an outlier form, outvoted by the other two
    tasks = [task(1), task(7), task(12)]
    answers = [t.reference for t in tasks]
    [flow] = induce_workflows(tasks, answers)
    assert "return sum(1 for x in xs if x > <A>)" in flow.text
    assert flow.source_task_ids == ["cg7", "cg12"]
    assert [len(w.source_task_ids) for w in induce_workflows(tasks, answers, per_scope=2)] == [2, 1]
    assert induce_workflows(tasks, answers, min_examples=4) == []
    fizz = [t for t in CODE if t.metadata["template"] == "fizz_word"]
    [flow] = induce_workflows(fizz, [t.reference for t in fizz])
    assert "return 'FizzBuzz'" in flow.text and "n % <A> == 0 and n % <B> == 0" in flow.text


def _values(task: Task) -> list[str]:
    return re.findall(r"\d+|(?<=')\w+(?=')", task.prompt)


@pytest.mark.parametrize(
    ("suite", "level", "answer_line"),
    [
        ("arithmetic", 2, "Answer: the value of <A> + <B>"),
        ("arithmetic", 5, "Answer: the value of <A> + <B> - <C>"),
        ("compare", 2, "Answer: the largest of <A>, <B>"),
        ("strings", 1, "Answer: <WORD> in uppercase"),
        ("strings", 5, "Answer: <WORD> spelled backwards"),
    ],
)
def test_answer_tasks_describe_how_the_answer_follows_from_the_values(suite, level, answer_line):
    tasks = [t for t in builtin_tasks(suite, split="train", n=40) if t.difficulty == level]
    answers = [f" {t.answer}\n" for t in tasks]
    [flow] = induce_workflows(tasks, answers)
    assert flow.scope == f"{suite}:{level}" and answer_line in flow.text.splitlines()
    # a task whose values repeat ("<A> + <A>") has another form, the rest share this one
    distinct = [t.id for t in tasks if len(set(v := _values(t))) == len(v)]
    assert set(distinct) <= set(flow.source_task_ids) and len(distinct) >= len(tasks) - 1
    assert set(distinct) <= set(flow.source_task_ids) and len(distinct) >= len(tasks) - 1
    for task in tasks:
        for value in [*_values(task), task.answer]:
            assert not re.search(rf"\b{re.escape(value)}\b", flow.text), (value, flow.text)


def test_ids_depend_on_scope_and_text_only():
    a = Workflow(scope="arithmetic:2", title="t", text="Task: What is <A> + <B>?", round=1)
    b = a.model_copy(update={"round": 4, "source_task_ids": ["x"], "origin": "offline"})
    c = a.model_copy(update={"scope": "arithmetic:1"})
    assert a.id == b.id != c.id
    tasks = builtin_tasks("arithmetic", split="train", n=10)
    first = induce_workflows(tasks, [t.answer for t in tasks])
    assert [w.id for w in first] == [
        w.id for w in induce_workflows(tasks, [t.answer for t in tasks])
    ]


def _teacher_reply(prompt: str, i: int) -> str:
    if "count_greater" in prompt:
        steps = ["Start a counter at 0.", "For each x in xs, add 1 when x > <A>.", "Return it."]
        return (
            "Sure!\n```json\n"
            + json.dumps({"title": "count numbers above <A>", "steps": steps})
            + "\n```"
        )
    if "scale_list" in prompt:  # repeats an instance's value: not abstract, so not used
        value = max(re.findall(r"multiplied by (\d+)", prompt), key=len)
        return json.dumps({"title": "scale", "steps": [f"Multiply each x by {value}."]})
    return "I would loop over the list and {broken"


def test_teacher_json_becomes_the_workflow_and_bad_output_falls_back_to_the_template():
    picked = [t for t in CODE if t.metadata["template"] in ("count_greater", "scale_list", "clamp")]
    answers = [t.reference for t in picked]
    teacher = FakeChatModel(_teacher_reply)
    flows = {w.scope: w for w in induce_workflows(picked, answers, teacher=teacher)}
    template = {w.scope: w for w in induce_workflows(picked, answers)}

    assert len(teacher.calls) == 1 and len(teacher.calls[0].prompts) == 3  # one batched call
    [asked] = [p[-1]["content"] for p in teacher.calls[0].prompts if "count_greater" in str(p)]
    assert "Verified answer:" in asked and '{"title"' in asked and "greater than <A>" in asked
    assert asked.count("Task: Write a Python function `count_greater") == 3  # 3 of 4 shown
    good = flows["code:count_greater"]
    assert good.inducer == "teacher" and good.title == "count numbers above <A>"
    assert "2. For each x in xs, add 1 when x > <A>." in good.text
    assert good.text.startswith("Task: Write a Python function `count_greater(xs)`")
    assert good.source_task_ids == template["code:count_greater"].source_task_ids
    for scope in ("code:scale_list", "code:clamp"):  # leaked value, garbage
        assert flows[scope] == template[scope] and flows[scope].inducer == "template"


def test_a_teacher_that_fails_leaves_the_template_workflows():
    class Down(FakeChatModel):
        def generate(self, prompts, **kwargs):
            raise ModelError("server down")

    answers = [t.reference for t in CODE[:10]]
    assert induce_workflows(CODE[:10], answers, teacher=Down()) == induce_workflows(
        CODE[:10], answers
    )
    empty = FakeChatModel("")
    assert all(
        w.inducer == "template" for w in induce_workflows(CODE[:5], answers[:5], teacher=empty)
    )


def test_workflow_prompt_puts_the_routine_before_the_task_in_one_message():
    tasks = [t for t in CODE if t.metadata["template"] == "count_greater"]
    [flow] = induce_workflows(tasks[1:], [t.reference for t in tasks[1:]])
    [message] = workflow_prompt(tasks[0], [flow])
    assert message["role"] == "user" and message["content"].endswith(tasks[0].prompt)
    assert message["content"].index(flow.text) < message["content"].index(tasks[0].prompt)
    assert workflow_prompt(tasks[0], []) == [{"role": "user", "content": tasks[0].prompt}]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="2 tasks but 1 answers"):
        induce_workflows(CODE[:2], ["x"])
    with pytest.raises(ValueError, match="origin"):
        induce_workflows(CODE[:1], ["x"], origin="later")
    assert induce_workflows(CODE[:2], ["", "  "]) == []

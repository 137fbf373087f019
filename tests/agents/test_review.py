"""Self-review: graded before and after, right→right / wrong→right counts, no feedback shown."""

from __future__ import annotations

import pytest

from selfimprove.agents.review import PROMPT_PATH, review_counts, self_review
from selfimprove.agents.self_edit import ChatTemplate
from selfimprove.tasks import builtin_tasks
from selfimprove.testing import FakeChatModel

ARITHMETIC = builtin_tasks("arithmetic", split="train", n=5)
CODE = builtin_tasks("code", split="train", n=3)


def _fenced(code: str) -> str:
    return f"```python\n{code}```"


def _wrong(answer: str) -> str:
    return str(int(answer) + 1)


def test_counts_confidence_critique_and_damage_on_real_graded_answers(grader):
    a, c = ARITHMETIC, CODE
    broken = c[1].reference.replace("return ", "return 1 + ", 1)
    # answers first, then code: the fake's reply index i is the task's index
    cases = [  # (task, answer under review, the model's reply)
        (a[0], a[0].answer, a[0].answer),  # right -> right (echoed)
        (a[1], a[1].answer, _wrong(a[1].answer)),  # right -> wrong
        (a[2], _wrong(a[2].answer), f"The answer is {a[2].answer}."),  # wrong -> right
        (a[3], _wrong(a[3].answer), _wrong(a[3].answer)),  # wrong -> wrong (echoed)
        (a[4], a[4].answer, ""),  # right -> wrong: an empty reply is graded as it is
        (c[0], c[0].reference, _fenced(c[0].reference)),  # right -> right
        (c[1], broken, _fenced(c[1].reference)),  # wrong -> right
        (c[2], _fenced(c[2].reference), "Looks good to me."),  # right -> wrong
    ]
    tasks, answers, replies = (list(x) for x in zip(*cases, strict=True))
    verdicts = grader.grade(tasks, answers)
    assert [v.passed for v in verdicts] == [True, True, False, False, True, True, False, True]
    model = FakeChatModel(lambda prompt, i: replies[i])

    reviews = self_review(model, grader, tasks, answers, verdicts, seed=3)

    assert [(r.before_passed, r.after_passed) for r in reviews] == [
        (True, True), (True, False), (False, True), (False, False),
        (True, False), (True, True), (False, True), (True, False),
    ]  # fmt: skip
    assert review_counts(reviews) == {
        "reviewed": 8,
        "right_to_right": 2,
        "right_to_wrong": 3,
        "wrong_to_right": 2,
        "wrong_to_wrong": 1,
    }
    assert [r.task_id for r in reviews] == [t.id for t in tasks]
    assert [r.before for r in reviews] == answers
    assert reviews[4].after == "" and reviews[4].after_reason == "no number in the reply"
    assert reviews[6].after_reason == "all tests passed"
    assert "SyntaxError" in reviews[7].after_reason  # prose is not code
    assert c[1].reference.strip() in reviews[6].after  # cut at the closing fence
    # one generate per settings group, answers then code, greedy with the seed given
    assert [len(call.prompts) for call in model.calls] == [5, 3]
    assert {(call.temperature, call.seed) for call in model.calls} == {(0.0, 3)}
    # the model sees its task and answer, and nothing of what the verifier said
    for task, answer, verdict, call_prompt in zip(
        tasks, answers, verdicts, model.prompts, strict=True
    ):
        user, assistant, ask = call_prompt
        assert user["content"] == task.prompt and assistant["content"] == answer
        assert "Check your answer" in ask["content"]
        assert verdict.reason not in " ".join(m["content"] for m in call_prompt)
    assert "```python" in model.prompts[5][-1]["content"]


def test_nothing_to_review_makes_no_call_and_lengths_must_match(grader):
    model = FakeChatModel("x")
    assert self_review(model, grader, [], [], []) == [] and model.calls == []
    assert review_counts([]) == {
        "reviewed": 0,
        "right_to_right": 0,
        "right_to_wrong": 0,
        "wrong_to_right": 0,
        "wrong_to_wrong": 0,
    }
    with pytest.raises(ValueError, match="1 tasks, 0 answers"):
        self_review(model, grader, ARITHMETIC[:1], [], [])


def test_the_prompt_file_parses():
    prompt = ChatTemplate.load(PROMPT_PATH)
    assert [role for role, _ in prompt.messages] == ["user", "assistant", "user"]
    assert set(prompt.reply) == {"code", "answer"}
    messages = prompt.render(CODE[0], answer="{not a placeholder}")
    assert messages[1]["content"] == "{not a placeholder}"
    assert messages[2]["content"].endswith(prompt.reply["code"])

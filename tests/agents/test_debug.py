"""The self-debugger: batched turns, verdicts, wrong→right counts, and no crash on garbage."""

from __future__ import annotations

from selfimprove.agents.debug import DebugPrompt, debug_counts, feedback_for, self_debug
from selfimprove.tasks import builtin_tasks
from selfimprove.testing import FakeChatModel
from selfimprove.types import Task, Verdict

CODE = builtin_tasks("code", split="train", n=3)
BROKEN = "```python\ndef nothing():\n    return None\n```"


def _fenced(code: str) -> str:
    return f"```python\n{code}```"


def _wrong(task) -> str:
    return _fenced(task.reference.replace("return ", "return 1 + ", 1))


def test_fixes_on_the_first_and_second_turn_and_garbage_is_a_failed_turn(grader):
    a, b, c = CODE
    failed = [_wrong(a), _wrong(b), BROKEN]
    verdicts = grader.grade(CODE, failed)
    assert not any(v.passed for v in verdicts)
    # turn 1 answers a, b, c in order; turn 2 answers b and c, the ones still failing
    model = FakeChatModel(
        [
            _fenced(a.reference),
            "I think it is fine.",
            "",
            _fenced(b.reference),
            "\x00```python\ndef (",
        ]
    )

    found = self_debug(model, grader, CODE, failed, verdicts, turns=2, temperature=0.0)

    assert [len(t.turns) for t in found] == [1, 2, 2]
    assert [t.fixed_at for t in found] == [1, 2, None]
    assert [[turn.verdict.passed for turn in t.turns] for t in found] == [
        [True],
        [False, True],
        [False, False],
    ]
    assert b.reference.strip() in found[1].fix.completion  # cut at the closing fence (stop)
    assert found[2].fix is None and "SyntaxError" in found[2].turns[1].verdict.reason
    assert debug_counts(found) == {
        "debugged": 3,
        "generated": 5,
        "wrong_to_right": 2,
        "wrong_to_wrong": 1,
        "fixed_on_turn_1": 1,
        "fixed_on_turn_2": 1,
    }
    # one batched generate per turn, only for what still fails
    assert [len(call.prompts) for call in model.calls] == [3, 2]
    assert [call.seed for call in model.calls] == [0, 1]
    # the prompt: task, failed answer, feedback naming what the code returned
    first = found[1].turns[0].messages
    assert [m["role"] for m in first] == ["user", "assistant", "user"]
    assert first[0]["content"] == b.prompt and first[1]["content"] == failed[1]
    assert "returned" in first[2]["content"] and "```python" in first[2]["content"]
    # turn 2 shows the answer of turn 1 and its feedback
    second = found[1].turns[1].messages
    assert second[1]["content"] == "I think it is fine."
    assert found[1].turns[1].feedback == found[1].turns[0].verdict.reason


def test_feedback_reports_the_returned_value_of_a_failing_test(grader):
    task = Task(
        id="inc", prompt="Write `inc(n)`.", kind="code", entry_point="inc",
        tests="assert inc(0) == 1\nfor n in range(3):\n    assert inc(n) == n + 1\nassert inc(2) == 3",
    )  # fmt: skip
    wrong = "def inc(n):\n    return n + 2 if n else 1\n"
    [verdict] = grader.grade([task], [wrong])
    assert "returned" not in verdict.reason
    [feedback] = feedback_for([task], [wrong], [verdict], grader)
    assert feedback == "exit code 1: AssertionError: inc(n) returned 3, expected n + 1"
    # without a grader the verifier's own reason is used
    assert feedback_for([task], [wrong], [verdict], None) == [verdict.reason]


def test_feedback_on_answer_tasks_does_not_give_the_answer_away(grader):
    task = builtin_tasks("arithmetic", split="train", n=1)[0]
    [verdict] = grader.grade([task], ["999"])
    assert task.answer in verdict.reason
    [feedback] = feedback_for([task], ["999"], [verdict], grader)
    assert "999" in feedback and task.answer not in feedback.replace("999", "")
    [revealed] = feedback_for([task], ["999"], [verdict], grader, reveal_answers=True)
    assert revealed == verdict.reason


def test_answer_tasks_are_debugged_and_grouped_by_generation_settings(grader):
    tasks = [*builtin_tasks("arithmetic", split="train", n=2), CODE[0]]
    failed = ["999", "-1", BROKEN]
    fixes = {0: tasks[0].answer, 1: "no idea", 2: _fenced(CODE[0].reference)}
    model = FakeChatModel(lambda prompt, i: fixes[i])
    found = self_debug(model, grader, tasks, failed, grader.grade(tasks, failed), turns=1)
    assert [t.fixed_at for t in found] == [1, None, 1]
    assert sorted(len(call.prompts) for call in model.calls) == [1, 2]  # answers, then code
    assert "Reply with just the corrected answer" in found[0].turns[0].messages[-1]["content"]


def test_zero_turns_and_nothing_to_debug_make_no_calls(grader):
    model = FakeChatModel("x")
    failed = [_wrong(CODE[0])]
    [trajectory] = self_debug(model, grader, CODE[:1], failed, [Verdict.fail("bad")], turns=0)
    assert trajectory.turns == [] and trajectory.fix is None
    assert self_debug(model, grader, [], [], [], turns=3) == []
    assert model.calls == []


def test_the_prompt_file_parses():
    prompt = DebugPrompt.load()
    assert [role for role, _ in prompt.messages] == ["user", "assistant", "user"]
    assert set(prompt.fix) == {"code", "answer"}
    task = CODE[0]
    messages = prompt.render(task, "{not a placeholder}", "failed {x}")
    assert (
        messages[1]["content"] == "{not a placeholder}" and "failed {x}" in messages[2]["content"]
    )

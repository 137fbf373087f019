"""The critic: robust parsing, one batched call, and agreement with the real verifier."""

from __future__ import annotations

import json

import pytest

from selfimprove.agents.critic import (
    PARSE_CHARS,
    PREFILL,
    RAW_CHARS,
    CriticPrompt,
    critic_counts,
    critique,
    parse_critique,
    precision_recall,
)
from selfimprove.tasks import builtin_tasks
from selfimprove.testing import FakeChatModel
from selfimprove.types import Task, Verdict

GOOD = {
    "verdict": "wrong",
    "errors": [
        {
            "location": "range(n)",
            "type": "off-by-one",
            "severity": "critical",
            "explanation": "misses the last element",
        },
        {"location": "line 1", "type": "style", "severity": "minor", "explanation": "name"},
    ],
}
WRONG = json.dumps({"verdict": "wrong", "errors": []})
CORRECT = json.dumps({"verdict": "correct", "errors": []})


def test_parses_a_good_critique():
    c = parse_critique("t1", "def f(): ...", json.dumps(GOOD))
    assert c.parsed and c.parse_error is None and c.says_wrong is True
    assert (c.task_id, c.answer, c.raw) == ("t1", "def f(): ...", json.dumps(GOOD))
    assert [(e.location, e.type, e.severity) for e in c.errors] == [
        ("range(n)", "off-by-one", "critical"),
        ("line 1", "style", "minor"),
    ]
    assert c.errors[0].explanation == "misses the last element"


def test_parses_fences_prose_trailing_commas_python_dicts_and_synonyms():
    fenced = (
        "Let me check {the loop}. Here's my review:\n```json\n"
        '{"Verdict": "Incorrect", "errors": [{"location": 3, "type": "arithmetic",'
        ' "severity": "HIGH", "explanation": "7 * 8 is 56, not {54}",},],}\n'
        "```\nHope that helps! {not: json}"
    )
    c = parse_critique("t", "54", fenced)
    assert c.verdict == "wrong" and c.parse_error is None
    [e] = c.errors
    assert (e.location, e.severity, e.explanation) == ("3", "major", "7 * 8 is 56, not {54}")
    py = parse_critique(
        "t", "a", "{'verdict': 'right', 'errors': [{'type': 't', 'severity': 'low'}]}"
    )
    assert py.verdict == "correct" and py.errors[0].severity == "minor"
    assert (py.errors[0].location, py.errors[0].explanation) == ("", "")
    json_only = '{"verdict": "wrong", "errors": [], "confidence": null,}'  # not a Python literal
    assert parse_critique("t", "a", json_only).verdict == "wrong"
    wrapped = '{"critique": {"verdict": "correct", "errors": []}, "note": true}'
    assert parse_critique("t", "a", wrapped).verdict == "correct"


@pytest.mark.parametrize(
    ("verdict", "severities", "says_wrong"),
    [
        ("wrong", [], True),
        ("correct", [], False),
        ("correct", ["minor", "minor"], False),
        ("correct", ["minor", "major"], True),  # contradiction: the serious error wins
        ("correct", ["critical"], True),
    ],
)
def test_says_wrong_rule(verdict, severities, says_wrong):
    errors = [{"location": "x", "type": "t", "severity": s, "explanation": ""} for s in severities]
    c = parse_critique("t", "a", json.dumps({"verdict": verdict, "errors": errors}))
    assert c.parsed and c.says_wrong is says_wrong


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("", "empty output"),
        ("   \n\t", "empty output"),
        ("The answer looks right to me.", "no JSON object"),
        ('{"verdict": "wrong", "errors": [{"location": "line 3", "type": "off', "truncated"),
        ('["wrong"]', "no JSON object"),
        ('"wrong"', "no JSON object"),
        ("{verdict: wrong}", "not valid JSON"),
        ('{"verdict": "maybe", "errors": []}', "'maybe'"),
        ('{"errors": []}', "verdict must be"),
        ('{"verdict": "wrong", "errors": "many"}', "errors must be a list"),
        ('{"verdict": "wrong", "errors": ["off by one"]}', "each error must be an object"),
        ('{"verdict": "wrong", "errors": [{"type": "t", "severity": "purple"}]}', "'purple'"),
        ('{"verdict": "wrong", "errors": [{"type": "t"}]}', "severity must be"),
        ('{"verdict": "wrong", "errors": [{"severity": "major"}]}', "bad error entry"),
        ("\x00\xff{{{{ ]]] '''", "truncated"),
    ],
)
def test_bad_output_is_a_recorded_parse_failure(raw, why):
    c = parse_critique("t", "a", raw)
    assert c.verdict is None and not c.parsed and c.says_wrong is None and c.errors == []
    assert c.parse_error is not None and why in c.parse_error
    assert c.raw == raw


def test_every_truncation_of_a_good_critique_fails_without_raising():
    full = json.dumps(GOOD)
    for cut in range(len(full)):
        c = parse_critique("t", "a", full[:cut])
        assert c.verdict is None and c.parse_error and c.raw == full[:cut], cut


def test_huge_output_is_capped_and_clipped():
    flood = "{" + "x" * 1_000_000
    c = parse_critique("t", "a", flood)
    assert c.verdict is None and "truncated" in c.parse_error and str(PARSE_CHARS) in c.parse_error
    assert c.raw.startswith("{xxx") and len(c.raw) < RAW_CHARS + 40
    assert c.raw.endswith(f"[{len(flood) - RAW_CHARS} more chars]")
    # a good object up front parses whatever follows; one past the cap is not searched
    assert parse_critique("t", "a", WRONG + "z" * 1_000_000).says_wrong is True
    late = parse_critique("t", "a", "z" * PARSE_CHARS + WRONG)
    assert late.verdict is None and f"first {PARSE_CHARS} chars" in late.parse_error
    assert parse_critique("t", "a", "{" * 200_000).verdict is None


def _tasks() -> list[Task]:
    return builtin_tasks("code", split="train", n=1) + builtin_tasks(
        "arithmetic", split="train", n=2
    )


def test_critique_batches_renders_and_keeps_order():
    tasks = _tasks()
    answers = [f"```python\n{tasks[0].reference}```", "999", tasks[2].answer]
    replies = {answers[0]: CORRECT, "999": f"```json\n{WRONG}\n```", tasks[2].answer: "no idea"}
    model = FakeChatModel(lambda text, i: next(r for a, r in replies.items() if a in text))

    found = critique(model, tasks, answers, temperature=0.3, seed=7, max_tokens=300)

    assert [(c.task_id, c.answer) for c in found] == [
        (t.id, a) for t, a in zip(tasks, answers, strict=True)
    ]
    assert [c.says_wrong for c in found] == [False, True, None]
    assert found[2].raw == "no idea" and found[2].parse_error
    [call] = model.calls  # one batched call for all answers
    assert (call.n, call.temperature, call.seed, call.max_tokens, call.stop) == (
        1,
        0.3,
        7,
        300,
        None,
    )
    assert len(call.prompts) == 3
    for prompt, task, answer in zip(call.prompts, tasks, answers, strict=True):
        assert [m["role"] for m in prompt] == ["system", "user"]
        assert task.prompt in prompt[-1]["content"] and answer in prompt[-1]["content"]
    assert "line" in call.prompts[0][-1]["content"]  # the code-task instruction


def test_critique_survives_missing_and_cut_off_completions():
    class Forgetful(FakeChatModel):
        def generate(self, prompts, **kw):
            rows = super().generate(prompts, **kw)
            return [[], *rows[1:-1]]  # nothing for the first prompt, the last row dropped

    tasks = _tasks()
    model = Forgetful(json.dumps(GOOD))
    found = critique(model, tasks, ["a", "b", "c"], max_tokens=5)
    assert [c.parsed for c in found] == [False, False, False]
    assert found[0].parse_error == "the model returned no completion" == found[2].parse_error
    assert "max_tokens=5" in found[1].parse_error  # cut at 5 words, so truncated JSON
    assert critique(model, [], []) == []
    with pytest.raises(ValueError, match="2 answers"):
        critique(model, tasks, ["a", "b"])


def test_counts_and_precision_recall_against_the_real_verifier(grader):
    arith = builtin_tasks("arithmetic", split="train", n=4)
    code = builtin_tasks("code", split="train", n=3)
    tasks = arith + code
    right = [t.answer for t in arith] + [f"```python\n{t.reference}```" for t in code]
    broken = [str(int(t.answer) + 1) for t in arith] + [
        f"```python\n{t.reference.replace('return ', 'return 1 + ', 1)}```" for t in code
    ]
    # (answer, critic reply, expected outcome)
    plan = [
        (right[0], WRONG, "fp"),
        (broken[1], WRONG, "tp"),
        (broken[2], json.dumps({"verdict": "correct", "errors": [GOOD["errors"][0]]}), "tp"),
        (right[3], "I cannot tell.", "unparsed"),
        (right[4], CORRECT, "tn"),
        (broken[5], CORRECT, "fn"),
        (broken[6], f"Looks fine: {CORRECT}", "fn"),
    ]
    answers = [a for a, _, _ in plan]
    verdicts = grader.grade(tasks, answers)
    assert [v.passed for v in verdicts] == [True, False, False, True, True, False, False]

    critiques = critique(FakeChatModel([r for _, r, _ in plan]), tasks, answers)
    counts = critic_counts(critiques, verdicts)

    assert counts == {
        "critiqued": 7, "parsed": 6, "parse_failures": 1, "tp": 2, "fp": 1, "fn": 2, "tn": 1,
    }  # fmt: skip
    assert precision_recall(counts) == (2 / 3, 0.5)


def test_precision_recall_undefined_and_count_mismatch():
    assert precision_recall({"tp": 0, "fp": 0, "fn": 0, "tn": 5}) == (None, None)
    assert precision_recall({"tp": 0, "fp": 2, "fn": 0}) == (0.0, None)
    assert precision_recall({"tp": 1, "fp": 0, "fn": 3}) == (1.0, 0.25)
    unparsed = parse_critique("t", "a", "")
    counts = critic_counts([unparsed], [Verdict.fail("x")])
    assert counts["parse_failures"] == 1 and counts["tp"] + counts["fn"] == 0
    with pytest.raises(ValueError, match="1 critiques but 0 verdicts"):
        critic_counts([unparsed], [])


def test_prompt_file_loads_and_renders_for_code_and_answer_tasks(tmp_path):
    prompt = CriticPrompt.load()
    assert set(prompt.check) == {"code", "answer"} and prompt.messages[-1][0] == "user"
    code, arith = _tasks()[:2]
    tricky = arith.model_copy(update={"prompt": "Is {answer} a {placeholder}? " + arith.prompt})
    for task in (code, tricky):
        messages = prompt.render(task, "ANSWER with {task} in it")
        text = messages[-1]["content"]
        assert task.prompt in text and "ANSWER with {task} in it" in text
        assert prompt.check[task.kind] in text and "{check}" not in text
        assert '{"verdict": "correct", "errors": []}' in text  # literal JSON survives
        assert not any("critic.py" in m["content"] for m in messages)  # comments dropped
    assert prompt.check["code"] != prompt.check["answer"]
    bad = tmp_path / "bad.txt"
    bad.write_text("[user]\n{task}\n[assistant]\nok\n", encoding="utf-8")
    with pytest.raises(ValueError, match="must end with a \\[user\\] message"):
        CriticPrompt.load(bad)


class _Continuing(FakeChatModel):
    """A fake backend that continues a final assistant message, as TransformersModel does."""

    continues_final_message = True


def test_a_backend_that_continues_gets_the_opening_of_the_json_reply():
    task = builtin_tasks("arithmetic", split="train", n=1)[0]
    model = _Continuing('wrong", "errors": []}', name="continuing")
    [got] = critique(model, [task], ["41"])
    [messages] = model.calls[-1].prompts
    assert messages[-1] == {"role": "assistant", "content": PREFILL}
    assert got.verdict == "wrong" and got.raw == PREFILL + 'wrong", "errors": []}'
    # a backend that does not continue is asked without it and parsed as it answers
    plain = FakeChatModel('{"verdict": "correct", "errors": []}')
    [got] = critique(plain, [task], ["41"])
    assert plain.calls[-1].prompts[0][-1]["role"] == "user" and got.verdict == "correct"

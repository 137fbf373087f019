"""Bad-input corpus, model outputs: every odd thing a model can say, through every reader.

Each named output goes (a) through the grader on an answer task and a code task,
(b) through every agent that reads model text (a ``FakeChatModel`` says it), and
(c) through one collect-graph round into a real Chroma store. Expected everywhere:
no exception, a failed verdict or parse failure with a readable reason, bounded
time, and what is stored is bounded, encodable text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from selfimprove.agents import (
    augment_failures,
    critique,
    induce_workflows,
    self_debug,
    self_edit_errors,
    self_review,
)
from selfimprove.agents.critic import RAW_CHARS
from selfimprove.config import SandboxConfig, StoreConfig
from selfimprove.eval.evaluate import CODE_MAX_TOKENS
from selfimprove.graphs.collect import CollectDeps, CollectSettings, collect
from selfimprove.memory import open_store
from selfimprove.models.bounded import CHARS_PER_TOKEN, MIN_CHARS
from selfimprove.sandbox import SandboxPool
from selfimprove.tasks import Grader, builtin_tasks
from selfimprove.testing import FakeChatModel
from selfimprove.types import Verdict

MB = 5_000_000
OUTPUTS = {
    "empty": "",
    "whitespace_only": " \n\t\r\n  \n",
    "control_chars": "".join(map(chr, range(1, 32))) * 3 + "\x7f\x1b[31m",
    "lone_surrogates": "the answer is \ud800 or \udfff",
    "rtl_and_zero_width_marks": "\u202e42\u202c \u200f\u200b\ufeff",
    "nul_bytes": "4\x002\x00",
    "truncated_json": '{"verdict": "wrong", "errors": [{"location": "line 1", "sev',
    "json_list_not_object": '[{"verdict": 1}, "errors", null, {"steps": 5}]',
    "json_wrong_types": '{"verdict": "maybe", "errors": "none", "prompt": 7, "title": ["x"]}',
    "json_with_surrogate_escapes": (  # valid JSON; its strings decode to lone surrogates
        r'{"verdict": "wrong", "prompt": "What is 1 + \ud800?", "answer": "5",'
        r' "title": "Add \udfff", "steps": ["add them"]}'
    ),
    "code_that_does_not_parse": "```python\ndef f(:\n    return (\n```",
    "only_a_markdown_fence": "```python\n```",
    "deep_nesting": "[" * 100_000,
    "enormous_text_5mb": "lorem ipsum dolor sit amet " * (MB // 27),
    "enormous_single_line_5mb": "9" * MB,
    "enormous_braces_5mb": "{" * MB,
}
NAMES = list(OUTPUTS)
ANSWER, ANSWER_2 = builtin_tasks("arithmetic", split="train", n=2)  # 0 + 3 = 3, 15 + 62 = 77
CODE = builtin_tasks("code", split="train", n=1)[0]
RIGHT = {ANSWER.id: "3", CODE.id: f"```python\n{CODE.reference}```"}
STORED_CHARS = max(MIN_CHARS, CODE_MAX_TOKENS * CHARS_PER_TOKEN)  # the most a sample keeps
SECONDS = 15  # "bounded time": generous for a 2-core machine, far from a hang


@pytest.fixture(scope="module")
def grader() -> Iterator[Grader]:
    config = SandboxConfig(workers=2, wall_timeout_s=2.0, cpu_time_s=2, memory_mb=256)
    with SandboxPool(config) as pool:
        yield Grader(pool)


def _readable(reason: str) -> None:
    """A reason a person can read: one short printable line that can be stored."""
    assert reason.strip() and len(reason) <= 500, reason[:200]
    assert reason.isprintable(), repr(reason[:200])
    reason.encode("utf-8")


@pytest.mark.parametrize("task", [ANSWER, CODE], ids=["answer_task", "code_task"])
@pytest.mark.parametrize("name", NAMES)
def test_grader_fails_each_output_with_a_readable_reason(grader, name, task):
    started = time.monotonic()
    verdict = grader.grade_one(task, OUTPUTS[name])
    assert not verdict.passed and verdict.score == 0.0
    _readable(verdict.reason)
    assert time.monotonic() - started < SECONDS


# -- (b) every agent that reads model text ------------------------------------------------
def _critic(model: FakeChatModel, grader: Grader) -> None:
    for c in critique(model, [ANSWER, CODE], [RIGHT[ANSWER.id], RIGHT[CODE.id]]):
        assert c.verdict is None and c.says_wrong is None  # a recorded parse failure
        _readable(c.parse_error or "")
        assert len(c.raw) <= RAW_CHARS + 40


def _debug(model: FakeChatModel, grader: Grader) -> None:
    failed = [Verdict.fail("got 4"), Verdict.fail("exit code 1: AssertionError")]
    found = self_debug(model, grader, [ANSWER, CODE], ["4", "def scale_list(xs, k): 0"], failed)
    for trajectory in found:
        assert trajectory.fix is None and len(trajectory.turns) == 2  # both turns recorded
        for turn in trajectory.turns:
            assert not turn.verdict.passed
            _readable(turn.verdict.reason)


def _review(model: FakeChatModel, grader: Grader) -> None:
    answers = [RIGHT[ANSWER.id], RIGHT[CODE.id]]
    reviews = self_review(model, grader, [ANSWER, CODE], answers, [Verdict.ok()] * 2)
    assert [(r.before_passed, r.after_passed) for r in reviews] == [(True, False)] * 2  # damage
    for r in reviews:
        _readable(r.after_reason)


def _self_edit(model: FakeChatModel, grader: Grader) -> None:
    results = self_edit_errors(model, [ANSWER, CODE], [RIGHT[ANSWER.id], RIGHT[CODE.id]], grader)
    assert [sum(r.tried.values()) for r in results] == [1, 1]  # the requests are counted
    assert [r.injections for r in results] == [[], []]  # and no garbage is kept as an error


def _workflows(model: FakeChatModel, grader: Grader) -> None:
    flows = induce_workflows([ANSWER, CODE], [RIGHT[ANSWER.id], RIGHT[CODE.id]], teacher=model)
    assert len(flows) == 2 and {w.inducer for w in flows} == {"template"}  # the fallback


def _augment(model: FakeChatModel, grader: Grader) -> None:
    result = augment_failures([ANSWER, CODE], grader, teacher=model, per_task=1)
    assert result.tasks == [] and result.rejected == {"parse_error": 2}


AGENTS: dict[str, Callable[[FakeChatModel, Grader], None]] = {
    "critic": _critic,
    "self_debug": _debug,
    "self_review": _review,
    "self_edit": _self_edit,
    "workflow_induction": _workflows,
    "augment": _augment,
}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("agent", list(AGENTS))
def test_agents_record_a_failure_for_each_output(grader, agent, name):
    model = FakeChatModel(OUTPUTS[name], name="odd-teacher")
    started = time.monotonic()
    AGENTS[agent](model, grader)
    assert model.calls  # the agent did ask the model
    assert time.monotonic() - started < SECONDS


def test_self_edit_keeps_a_real_small_edit():
    """The guard against garbage (above) must not reject what self-edit is for."""
    model = FakeChatModel("4")
    [result] = self_edit_errors(model, [ANSWER], ["3"], Grader(), errors=["change_value"])
    assert [i.text for i in result.injections] == ["4"]


# -- (c) one collect round whose student says it -----------------------------------------
@pytest.fixture
def chroma(tmp_path) -> Any:
    return open_store(StoreConfig(backend="chroma", path=tmp_path / "store", embedding="hash"))


@pytest.mark.parametrize("name", NAMES)
def test_collect_round_stores_the_failures_bounded(grader, chroma, name):
    text = OUTPUTS[name]
    settings = CollectSettings(
        samples_per_task=2, debug_turns=1, critic=True, self_review=2, self_edit=True, round=1
    )
    deps = CollectDeps(FakeChatModel(text, name="odd-student"), grader, chroma, settings)
    started = time.monotonic()
    counts = collect(deps, [ANSWER, ANSWER_2, CODE])
    assert time.monotonic() - started < SECONDS

    stored = chroma.find()
    assert len(stored) == chroma.count() == counts["new"]
    assert counts["samples"] == 6 and counts["samples_passed"] == 0
    attempts = [e for e in stored if e.kind == "attempt" and e.agent == "student"]
    assert {e.task_id for e in attempts} == {ANSWER.id, ANSWER_2.id, CODE.id}
    for e in attempts:  # every failure is stored, with why it failed
        assert e.passed is False and e.round == 1 and e.model == "odd-student"
        _readable(e.reason)
    assert {e.kind for e in stored} <= {"attempt", "negative", "critique"}  # no training data
    for e in stored:
        assert len(e.completion) <= STORED_CHARS and len(e.reason) <= 500
        (e.prompt + e.completion + e.reason + (e.rejected or "")).encode("utf-8")
    critiques = [e for e in stored if e.kind == "critique"]
    assert all(e.metadata["verdict"] == "unparsed" and e.reason for e in critiques)
    if len(text) > STORED_CHARS and " " not in text:  # one enormous "word": the fake keeps it
        assert {e.metadata["finish_reason"] for e in attempts} == {"length"}  # cut, and says so
    if "\x00" in text:
        assert all(e.completion == text for e in attempts)  # stored as the model said it
    if "\ud800" in text:
        assert all("\ufffd" in e.completion for e in attempts)

"""The collect graph's optional agents wired in: critic, self-review, self-edit, workflow memory."""

from __future__ import annotations

import json
import uuid

import chromadb
import pytest

from selfimprove.agents.workflows import induce_workflows
from selfimprove.config import StoreConfig
from selfimprove.graphs.collect import (
    AFTER_VERIFY,
    CollectDeps,
    CollectSettings,
    build_collect_graph,
    collect,
    collect_input,
)
from selfimprove.memory import open_store
from selfimprove.memory.embeddings import HashEmbeddings
from selfimprove.memory.workflows import WorkflowMemory
from selfimprove.tasks import builtin_tasks
from selfimprove.testing import FakeChatModel

A1, A2, A3 = builtin_tasks("arithmetic", split="train", n=3)  # 0 + 3, 15 + 62, 32 - 15
C1 = builtin_tasks("code", split="train", n=1)[0]  # scale_list
TASKS = [A1, A2, A3, C1]
SAMPLES = {
    A1.prompt: ["3", "3"],
    A2.prompt: ["77", "76"],
    A3.prompt: ["99", "98"],
    C1.prompt: [f"```python\n{C1.reference}```"] * 2,
}


def _student(prompt: str, i: int) -> str:
    if prompt.startswith("Check your answer"):
        return "77"  # the self-review turn: right for A2 only
    if prompt.startswith("That answer is wrong"):
        return "0"  # self-debug never fixes here
    for task_prompt, replies in SAMPLES.items():
        if prompt.endswith(task_prompt):  # also with a workflow in front
            return replies[i % 2]
    raise AssertionError(f"unexpected prompt {prompt[:80]!r}")


def _teacher(prompt: str, i: int) -> str:
    """Critic: "wrong" for any answer with a 9 in it, "correct" but a critical error for 76;
    self-edit: 77 -> 78, `* k` -> `* (k + 1)`."""
    if "Reply with ONLY a JSON object" in prompt:
        answer = prompt.split("Answer to check:\n", 1)[1].split("\n\n", 1)[0]
        verdict = "wrong" if "9" in answer else "correct"
        errors = [{"location": "the answer", "type": "arithmetic", "severity": "critical",
                   "explanation": "off"}] if verdict == "wrong" or answer == "76" else []  # fmt: skip
        return json.dumps({"verdict": verdict, "errors": errors})
    if "subtle mistake" in prompt:
        answer = prompt.split("Correct answer:\n", 1)[1].split("\n\nRewrite", 1)[0]
        return answer.replace("77", "78").replace("3", "4").replace("x * ", "x * 1 + x * ")
    raise AssertionError(f"unexpected teacher prompt {prompt[:80]!r}")


def _deps(store, grader, teacher=True, memory=None, **settings) -> CollectDeps:
    base = {"samples_per_task": 2, "round": 2, "injections_per_answer": 1, "debug_turns": 1}
    return CollectDeps(
        FakeChatModel(_student, name="student"),
        grader,
        store,
        CollectSettings(**(base | settings)),
        teacher=FakeChatModel(_teacher, name="teacher") if teacher else None,
        workflows=memory,
    )


@pytest.fixture
def store():
    return open_store(StoreConfig(backend="memory", embedding="hash"))


def test_every_step_runs_in_order_when_switched_on(store, grader):
    deps = _deps(store, grader, critic=True, self_review=4, self_edit=True)
    graph_steps = []
    for update in build_collect_graph(deps).stream(collect_input(TASKS), stream_mode="updates"):
        graph_steps += list(update)
    assert graph_steps == ["generate", "verify", *AFTER_VERIFY[:-1]]  # no memory: no induce


def test_critic_agreement_is_counted_and_critiques_stored_with_lineage(store, grader):
    counts = collect(_deps(store, grader, critic=True, critic_samples=50), TASKS)
    # distinct answers: 3, 77, 76, 99, 98, code; wrong ones: 76, 99, 98; the critic calls 99
    # and 98 wrong, and 76 "correct" with a critical error, which counts as wrong too
    assert counts["critic/critiqued"] == 6 and counts["critic/parsed"] == 6
    assert (counts["critic/tp"], counts["critic/fp"], counts["critic/fn"]) == (3, 0, 0)
    assert counts["critic/tn"] == 3
    critiques = store.find({"kind": "critique"})
    assert len(critiques) == 6 and {c.model for c in critiques} == {"teacher"}
    attempts = {a.id: a for a in store.find({"kind": "attempt", "agent": "student"})}
    for c in critiques:
        parent = attempts[c.parent_id]  # each critique points at the attempt it judged
        assert c.metadata["verifier_passed"] == parent.passed
        says_wrong = c.metadata["says_wrong"] == "true"
        assert says_wrong == (c.metadata["verdict"] == "wrong" or c.metadata["errors"] > 0)
        assert c.passed is (says_wrong != parent.passed) is True  # this critic is always right
    flagged = [c for c in critiques if c.metadata["verdict"] == "correct" and c.metadata["errors"]]
    assert len(flagged) == 1 and flagged[0].metadata["says_wrong"] == "true"


def test_self_review_counts_right_and_wrong_turns(store, grader):
    counts = collect(_deps(store, grader, self_review=4), TASKS)
    assert counts["review/reviewed"] == 4
    four = ("right_to_right", "right_to_wrong", "wrong_to_right", "wrong_to_wrong")
    assert sum(counts[f"review/{k}"] for k in four) == 4
    reviews = store.find({"agent": "self_review"})
    assert len(reviews) == 4 and all(r.completion == "77" for r in reviews)
    assert counts["review/wrong_to_right"] == sum(
        1 for r in reviews if r.passed and not r.metadata["before_passed"]
    )


def test_self_edit_pairs_are_verified_failures_with_the_operator_recorded(store, grader):
    counts = collect(_deps(store, grader, self_edit=True, inject_errors=False), TASKS)
    pairs = store.find({"$and": [{"kind": "pair"}, {"agent": "inject"}]})
    assert pairs and all(p.error_type.startswith("self_edit:") for p in pairs)
    tasks = {t.id: t for t in TASKS}
    verdicts = grader.grade([tasks[p.task_id] for p in pairs], [p.rejected for p in pairs])
    assert not any(v.passed for v in verdicts)
    assert counts["inject/kept"] == len(pairs)
    assert sum(v for k, v in counts.items() if k.endswith("/failing")) >= len(pairs)


def test_workflows_are_recalled_for_half_the_samples_and_induced_from_successes(store, grader):
    memory = WorkflowMemory(
        chromadb.EphemeralClient(), f"wf-{uuid.uuid4().hex[:8]}", HashEmbeddings()
    )
    memory.add(induce_workflows([A2], [A2.answer], origin="offline"))
    deps = _deps(store, grader, teacher=False, memory=memory, workflows=True)
    counts = collect(deps, TASKS)
    assert counts["workflows/used"] >= 1
    armed = store.find(
        {"$and": [{"kind": "attempt"}, {"workflow_arm": {"$in": ["with", "control"]}}]}
    )
    assert {a.metadata["workflow_arm"] for a in armed} <= {"with", "control"}
    assert counts["workflows/induced"] >= 1 and len(memory) >= 1 + counts["workflows/new"] - 1
    stats = memory.stats()
    used = [s for s in stats.values() if s.uses]
    assert used and all(s.uses == 1 and s.control_uses == 1 for s in used)  # k=2: one sample each

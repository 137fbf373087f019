"""The workflow memory: MiniLM retrieval finds the workflow of a new task's kind, idempotent adds,
retirement that survives a reopen, and A/B stats derived from stored attempts."""

from __future__ import annotations

import json
import uuid

import chromadb
import pytest

from selfimprove.agents.workflows import Workflow, induce_workflows, workflow_scope
from selfimprove.memory import ChromaStore, HashEmbeddings
from selfimprove.memory.workflows import (
    WorkflowMemory,
    WorkflowStats,
    stats_from_attempts,
    unhelpful,
    workflow_document,
)
from selfimprove.tasks import builtin_tasks
from selfimprove.types import Example

ANSWER_SUITES = ("arithmetic", "compare", "strings")


@pytest.fixture(scope="module")
def induced() -> list[Workflow]:
    """Offline workflows of every code template and every answer-suite level."""
    code = builtin_tasks("code", split="train", n=60)
    flows = induce_workflows(code, [t.reference for t in code], origin="offline")
    for suite in ANSWER_SUITES:
        tasks = builtin_tasks(suite, split="train", n=30)
        flows += induce_workflows(tasks, [t.answer for t in tasks], origin="offline")
    return flows


def _memory(flows: list[Workflow] = ()) -> WorkflowMemory:
    memory = WorkflowMemory(
        chromadb.EphemeralClient(), "w" + uuid.uuid4().hex[:12], HashEmbeddings()
    )
    memory.add(flows)
    return memory


def test_minilm_retrieval_returns_the_workflow_of_the_new_tasks_kind(tmp_path, induced, minilm):
    memory = WorkflowMemory.persistent(tmp_path, embeddings=minilm)
    assert memory.add(induced) == len(induced) >= 30
    heldout = builtin_tasks("code", split="heldout", n=100)
    count = next(t for t in heldout if t.metadata["template"] == "count_greater")

    hits = memory.retrieve(count, k=len(induced), same_scope=False)
    scores = {w.scope: s for w, s in hits}
    assert hits[0][0].scope == "code:count_greater"
    assert scores["code:count_greater"] > scores["code:scale_list"] + 0.1
    assert [s for _, s in hits] == sorted(scores.values(), reverse=True)
    # every held-out code task finds its own template's workflow first, by meaning alone
    for task in heldout:
        [(top, _)] = memory.retrieve(task, same_scope=False)
        assert top.scope == workflow_scope(task), task.prompt
    # answer tasks find a workflow of their own suite (levels of one suite read alike)
    for suite in ANSWER_SUITES:
        for task in builtin_tasks(suite, split="heldout", n=20):
            [(top, _)] = memory.retrieve(task.prompt)
            assert top.scope.split(":")[0] == suite, (task.prompt, top.scope)


def test_retrieve_many_answers_like_retrieve_for_each_task(induced):
    memory = _memory(induced)
    tasks = builtin_tasks("code", split="heldout", n=12) + builtin_tasks(
        "compare", split="heldout", n=6
    )
    memory.retire([induced[0].id], round=1, reason="test")
    many = memory.retrieve_many(tasks, k=2)
    assert len(many) == len(tasks)
    for task, hits in zip(tasks, many, strict=True):
        one = memory.retrieve(task, k=2)
        assert [w.id for w, _ in hits] == [w.id for w, _ in one]
        assert [s for _, s in hits] == pytest.approx([s for _, s in one], abs=1e-5)
        assert induced[0].id not in {w.id for w, _ in hits}
    assert memory.retrieve_many([], k=1) == []


def test_same_scope_min_score_and_retired_workflows_filter_retrieval(induced):
    memory = _memory(induced)
    heldout = builtin_tasks("code", split="heldout", n=40)
    task = next(t for t in heldout if t.metadata["template"] == "keep_below")
    [(flow, score)] = memory.retrieve(task, k=5)
    assert flow.scope == "code:keep_below" and 0.0 < score <= 1.0
    assert memory.retrieve(task, k=5, min_score=score + 1e-6) == []
    assert {w.scope for w, _ in memory.retrieve(task, k=5, same_scope=False)} > {flow.scope}

    assert memory.retire([flow.id], round=3, reason="no lift") == 1
    assert memory.retrieve(task, k=5) == []
    assert flow.scope not in {w.scope for w, _ in memory.retrieve(task, k=50, same_scope=False)}
    assert flow not in memory.all(include_retired=False) and flow in memory.all()
    assert memory.get([flow.id]) == [flow]
    with pytest.raises(ValueError, match="k must be a positive int"):
        memory.retrieve(task, k=0)


def test_adds_are_idempotent_and_a_reopened_memory_keeps_workflows_and_retirements(
    tmp_path, induced
):
    memory = WorkflowMemory.persistent(tmp_path / "db", embeddings=HashEmbeddings())
    first, second = induced[:10], induced[5:15]
    assert memory.add(first + first) == 10
    assert memory.add(second) == 5 and len(memory) == 15
    assert memory.add(w.model_copy(update={"round": 9}) for w in first) == 0  # same scope + text
    assert memory.retire([first[0].id, first[1].id, "unknown"], round=2, reason="hurt") == 2
    assert memory.retire([first[0].id], round=3, reason="again") == 0  # first reason kept

    reopened = WorkflowMemory(chromadb.PersistentClient(path=str(tmp_path / "db")))
    assert reopened.embeddings.name() == HashEmbeddings.name()
    assert len(reopened) == 15
    assert sorted(reopened.all(), key=lambda w: w.id) == sorted(induced[:15], key=lambda w: w.id)
    assert reopened.retired() == {first[0].id: "hurt", first[1].id: "hurt"}
    assert len(reopened.all(include_retired=False)) == 13
    assert reopened.get([first[2].id, "nope", first[0].id]) == [first[2], first[0]]
    assert reopened.retrieve(workflow_document(first[2]), k=1)[0][0] == first[2]
    # plain chromadb sees flat metadata, lists as JSON
    raw = reopened.collection.get(ids=[first[0].id], include=["metadatas"])["metadatas"][0]
    assert raw["retired"] is True and raw["retired_round"] == 2 and raw["scope"] == first[0].scope
    assert json.loads(raw["source_task_ids"]) == first[0].source_task_ids


def test_workflows_live_apart_from_the_example_store(tmp_path, induced):
    store = ChromaStore.persistent(tmp_path, embeddings=HashEmbeddings())
    store.add([Example(kind="attempt", prompt="What is 2 + 2?", completion="4")])
    memory = WorkflowMemory.persistent(tmp_path, embeddings=HashEmbeddings())
    memory.add(induced[:3])
    assert store.count() == 1 and len(memory) == 3
    with pytest.raises(ValueError, match="not workflows"):
        WorkflowMemory(store.client, "examples").all()


def _attempts(flow_id: str, arm: str, passed: int, failed: int, task: str = "t1") -> list[Example]:
    return [
        Example(
            kind="attempt",
            prompt=f"task {task}",
            completion=f"{flow_id} {arm} answer {i}",  # ids ignore metadata: keep them apart
            task_id=task,
            passed=i < passed,
            metadata={"workflow": flow_id, "workflow_arm": arm},
        )
        for i in range(passed + failed)
    ]


def test_stats_come_from_attempts_and_unhelpful_workflows_are_the_ones_without_lift():
    attempts = (
        _attempts("hurts", "with", 2, 6)  # 0.25
        + _attempts("hurts", "control", 4, 4)  # 0.5
        + _attempts("helps", "with", 6, 2)
        + _attempts("helps", "control", 2, 6)
        + _attempts("young", "with", 0, 3)
        + _attempts("young", "control", 3, 0)
        + _attempts("equal", "with", 4, 4, task="t2")
        + _attempts("equal", "control", 4, 4, task="t2")
    )
    noise = [
        attempts[0],  # the same stored attempt twice counts once
        attempts[0].model_copy(update={"kind": "positive"}),  # derived from an attempt
        attempts[1].model_copy(update={"passed": None, "completion": "ungraded"}),
        attempts[1].model_copy(update={"metadata": {"workflow": "hurts"}, "completion": "no arm"}),
        *_attempts("twice", "with", 1, 0) * 2,
        Example(kind="attempt", prompt="p", completion="c", passed=True),
    ]
    stats = stats_from_attempts(attempts + noise)

    assert stats["twice"] == WorkflowStats(uses=1, successes=1)
    assert stats["hurts"] == WorkflowStats(uses=8, successes=2, control_uses=8, control_successes=4)
    assert (stats["hurts"].with_rate, stats["hurts"].control_rate) == (0.25, 0.5)
    assert stats["hurts"].lift == -0.25 and stats["helps"].lift == 0.5
    assert set(stats) == {"hurts", "helps", "young", "equal", "twice"}
    assert unhelpful(stats) == ["equal", "hurts"]  # equal: no raise in success
    assert unhelpful(stats, min_uses=3) == ["equal", "hurts", "young"]
    assert unhelpful(stats, margin=-0.3) == []
    assert unhelpful(stats, margin=0.6) == ["equal", "helps", "hurts"]
    assert WorkflowStats().lift is None and WorkflowStats(uses=1).with_rate == 0.0
    # identical answers are stored as one attempt that counts its samples
    counted = _attempts("w", "with", 1, 1)[0].model_copy(
        update={"metadata": {"workflow": "w", "workflow_arm": "with", "count": 3}}
    )
    assert stats_from_attempts([counted]) == {"w": WorkflowStats(uses=3, successes=3)}


def test_recorded_rounds_sum_and_a_round_recorded_again_replaces_itself(tmp_path, induced):
    memory = WorkflowMemory.persistent(tmp_path, embeddings=HashEmbeddings())
    memory.add(induced[:3])
    a, b, c = (w.id for w in induced[:3])
    hurt = WorkflowStats(uses=4, successes=1, control_uses=4, control_successes=2)
    good = WorkflowStats(uses=4, successes=4, control_uses=4, control_successes=1)
    assert memory.record_round(1, {a: hurt, b: good, "unknown": hurt}) == 2
    assert memory.record_round(1, {a: hurt, b: good}) == 2  # a resumed round: replaced
    assert memory.stats() == {a: hurt, b: good}
    memory.record_round(2, {a: hurt})
    reopened = WorkflowMemory(chromadb.PersistentClient(path=str(tmp_path)))
    assert reopened.stats() == {a: hurt + hurt, b: good} and c not in reopened.stats()
    assert reopened.stats()[a].uses == 8 and unhelpful(reopened.stats()) == [a]
    assert reopened.retire(unhelpful(reopened.stats()), round=2, reason="no lift") == 1
    assert reopened.stats()[a] == hurt + hurt  # retirement keeps the record


def test_retiring_what_unhelpful_names_hides_it_from_retrieval(induced):
    memory = _memory(induced)
    flow = next(w for w in induced if w.scope == "code:scale_list")
    stats = stats_from_attempts(
        _attempts(flow.id, "with", 1, 9) + _attempts(flow.id, "control", 5, 5)
    )
    assert memory.retire(unhelpful(stats), round=1, reason="with 0.10 <= control 0.50") == 1
    assert memory.retired() == {flow.id: "with 0.10 <= control 0.50"}
    assert memory.retrieve(flow.title, k=40, same_scope=False)  # the others are still there
    assert flow.id not in {w.id for w, _ in memory.retrieve(flow.title, k=40, same_scope=False)}


def test_retrieval_skips_retired_workflows_without_filtering_chroma_on_a_boolean(induced):
    memory = _memory(induced)
    task = builtin_tasks("compare", split="heldout", n=1)[0]
    nearest = memory.retrieve(task, k=50, same_scope=False)
    memory.retire([w.id for w, _ in nearest[:5]], round=2, reason="no lift")
    asked = []
    query = memory.collection.query

    def recording(**kwargs):
        asked.append(kwargs["where"])
        return query(**kwargs)

    memory.collection.query = recording  # type: ignore[method-assign]
    # the five nearest are retired: the next five live ones come back, in order
    live = memory.retrieve(task, k=5, same_scope=False)
    assert [w.id for w, _ in live] == [w.id for w, _ in nearest[5:10]]
    assert memory.retrieve_many([task], k=1)[0] == memory.retrieve(task, k=1)
    # Chroma does not index booleans: a filter on "retired" would scan the whole database
    assert asked and all(where is None or "retired" not in str(where) for where in asked)
    assert set(memory.retired()) == {w.id for w, _ in nearest[:5]}

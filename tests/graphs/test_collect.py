"""The collect graph end to end: scripted answers, a real sandbox grader, an in-memory store."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver

from selfimprove.agents.inject import OPERATORS
from selfimprove.config import StoreConfig
from selfimprove.graphs.collect import (
    CollectDeps,
    CollectSettings,
    build_collect_graph,
    collect,
    collect_input,
    make_collector,
)
from selfimprove.memory import open_store
from selfimprove.tasks import builtin_tasks
from selfimprove.testing import FakeChatModel
from selfimprove.types import Example

A1, A2, A3 = builtin_tasks("arithmetic", split="train", n=3)  # 0 + 3, 15 + 62, 32 - 15
C1, C2 = builtin_tasks("code", split="train", n=2)  # scale_list, sum_multiples
TASKS = [A1, A2, A3, C1, C2]
BROKEN = "```python\ndef nothing():\n    return None\n```"


def _fenced(code: str) -> str:
    return f"```python\n{code}```"


def _script():
    """Per task: its k=2 samples in turn; fixes keyed by what the feedback mentions."""
    samples = {
        A1.prompt: ["3", "The answer is 3."],  # both right
        A2.prompt: ["77", "76"],  # one right, one wrong
        A3.prompt: ["99", "99"],  # wrong twice: debugged, fixed on turn 1
        C1.prompt: [_fenced(C1.reference)] * 2,
        C2.prompt: [BROKEN] * 2,  # debugged: still wrong on turn 1, fixed on turn 2
    }
    c2_fixes = [_fenced("def sum_multiples(xs):\n    return 0\n"), _fenced(C2.reference)]
    seen: Counter[str] = Counter()

    def reply(prompt: str, i: int) -> str:
        key = "c2-fix" if "sum_multiples" in prompt else prompt
        seen[key] += 1
        if not prompt.startswith("That answer is wrong"):
            return samples[prompt][seen[key] - 1]
        if "got 99" in prompt:
            return A3.answer
        return c2_fixes[min(seen[key], 2) - 1]

    return reply


def _deps(store, grader, **settings) -> CollectDeps:
    model = FakeChatModel(_script(), name="fake-student")
    base = {"samples_per_task": 2, "round": 3, "injections_per_answer": 1, "temperature": 0.7}
    return CollectDeps(model, grader, store, CollectSettings(**(base | settings)))


@pytest.fixture
def store():
    return open_store(StoreConfig(backend="memory", embedding="hash"))


def test_collect_stores_exactly_what_the_round_produced(store, grader):
    deps = _deps(store, grader)
    counts = collect(deps, TASKS)

    assert {k: counts[k] for k in ("attempt", "positive", "negative", "pair", "new")} == {
        "attempt": 10,  # 7 distinct samples + 3 self-debug turns
        "positive": 8,  # A1 x2, A2, C1, the fixes of A3 and C2, and both with their feedback
        "negative": 3,  # 76, 99, the broken C2 answer
        "pair": 9,
        "new": 30,
    }
    assert counts["pair/sampled"] == 1 and counts["pair/self_debug"] == 2
    assert counts["pair/injected"] == 6 == counts["inject/kept"]  # one per correct answer
    assert counts["positive/self_debug"] == 4
    in_context = [e for e in store.find({"kind": "positive"}) if "messages" in e.metadata]
    assert len(in_context) == 2  # LeTI: the fix trained with the failed answer and feedback
    for fix in in_context:
        turns = json.loads(fix.metadata["messages"])
        assert [t["role"] for t in turns] == ["user", "assistant", "user"]
        assert "The checker says" in turns[-1]["content"]
        assert store.get([fix.parent_id])[0].completion == fix.completion
    assert counts["samples"] == 10 and counts["samples_passed"] == 5 and counts["tasks_solved"] == 3
    assert counts["groups"] == 5 and counts["groups_mixed"] == 1  # only A2: one right, one wrong
    assert counts["self_debug/wrong_to_right"] == 2 and counts["self_debug/fixed_on_turn_2"] == 1
    tried = {k for k in counts if k.startswith("inject/") and k.endswith("/tried")}
    assert tried and all(counts[k] >= counts[k.replace("tried", "failing")] for k in tried)
    assert store.count() == 30
    # batched: one generate call per settings group (answers, code), n=k; then debug turns
    calls = deps.model.calls
    assert [(len(c.prompts), c.n) for c in calls] == [(3, 2), (2, 2), (1, 1), (1, 1), (1, 1)]
    assert all(c.temperature == 0.7 and c.seed in (0, 1) for c in calls)


def test_lineage_of_stored_examples(store, grader):
    collect(_deps(store, grader), TASKS)
    by_id = {e.id: e for e in store.find()}
    tasks = {t.id: t for t in TASKS}
    for e in by_id.values():
        assert e.round == 3 and e.model == "fake-student" and e.prompt == tasks[e.task_id].prompt
        task = tasks[e.task_id]
        assert (e.metadata["suite"], e.metadata["split"], e.metadata["difficulty"]) == (
            task.suite,
            task.split,
            task.difficulty,
        )
    for e in store.find({"kind": {"$in": ["positive", "negative"]}}):
        parent = by_id[e.parent_id]
        if "messages" in e.metadata:  # the fix with its feedback: child of the plain fix
            parent = by_id[parent.parent_id]
        assert parent.kind == "attempt" and parent.completion == e.completion
        assert e.passed is (e.kind == "positive")
    for e in store.find({"kind": "pair"}):
        parent = by_id[e.parent_id]
        assert parent.kind == "positive" and parent.completion == e.completion != e.rejected
    injected = store.find({"agent": "inject"})
    assert len(injected) == 6 and all(
        e.error_type in OPERATORS and e.metadata["edit"] for e in injected
    )
    [sampled] = store.find({"error_type": "sampled"})
    assert (sampled.completion, sampled.rejected, sampled.agent) == ("77", "76", "student")
    fixes = store.find({"$and": [{"kind": "positive"}, {"agent": "self_debug"}]})
    assert sorted(e.task_id for e in fixes) == sorted([A3.id, C2.id] * 2)  # plain and in context
    [c2_pair] = store.find({"$and": [{"error_type": "self_debug"}, {"task_id": C2.id}]})
    assert C2.reference.strip() in c2_pair.completion and c2_pair.rejected == BROKEN.removesuffix(
        "\n```"
    )  # cut at the stop
    turns = store.find({"$and": [{"kind": "attempt"}, {"agent": "self_debug"}, {"task_id": C2.id}]})
    assert [e.metadata["turn"] for e in turns] == [1, 2] and [e.passed for e in turns] == [
        False,
        True,
    ]
    assert "returned 0, expected" in turns[1].metadata["feedback"]


def test_running_the_round_again_adds_nothing(store, grader):
    first = collect(_deps(store, grader), TASKS)
    stored = store.count()
    again = collect(_deps(store, grader), TASKS)  # a fresh model with the same script: same answers
    assert store.count() == stored == first["new"]
    assert again == first  # a re-run round (after a crash) reports what the first run did


def _path(deps, tasks) -> list[str]:
    graph = build_collect_graph(deps)
    return [next(iter(u)) for u in graph.stream(collect_input(tasks), stream_mode="updates")]


def test_routers_skip_steps_with_nothing_to_do(store, grader):
    assert _path(_deps(store, grader), [A1, C1]) == ["generate", "verify", "inject", "store"]
    assert _path(_deps(store, grader), [A3]) == [
        "generate",
        "verify",
        "self_debug",
        "inject",
        "store",
    ]
    off = {"self_debug": False, "inject_errors": False}
    assert _path(_deps(store, grader, **off), [A3]) == ["generate", "verify", "store"]
    assert _path(_deps(store, grader, debug_turns=0, retrieve_k=1), [A3]) == [
        "retrieve",
        "generate",
        "verify",
        "store",
    ]


def test_retrieval_puts_earlier_positives_into_the_prompt(store, grader):
    similar = "What is 15 + 61? Answer with just the number."
    earlier = Example(kind="positive", prompt=similar, completion="76", task_id="x", round=2)
    store.add(
        [
            earlier,
            earlier.model_copy(update={"task_id": "h", "metadata": {"split": "heldout"}}),
            earlier.model_copy(update={"task_id": "now", "round": 3}),  # this round: not yet
            earlier.model_copy(update={"task_id": A2.id, "completion": "77"}),  # the task itself
            earlier.model_copy(update={"kind": "negative", "task_id": "n", "completion": "75"}),
        ]
    )
    deps = _deps(store, grader, retrieve_k=3, self_debug=False, inject_errors=False)
    counts = collect(deps, [A2])

    [prompt] = deps.model.calls[0].prompts
    assert prompt == [
        {"role": "user", "content": similar},
        {"role": "assistant", "content": "76"},
        {"role": "user", "content": A2.prompt},
    ]
    assert counts["retrieved"] == 1
    [positive] = store.find({"$and": [{"kind": "positive"}, {"task_id": A2.id}, {"round": 3}]})
    assert positive.prompt == A2.prompt  # trained on the plain prompt, as evaluated
    attempts = store.find({"$and": [{"kind": "attempt"}, {"task_id": A2.id}]})
    assert {e.metadata["retrieved"] for e in attempts} == {earlier.id}


def test_state_is_checkpointed_in_sqlite(store, grader, tmp_path, caplog):
    conn = sqlite3.connect(tmp_path / "collect.sqlite", check_same_thread=False)
    graph = build_collect_graph(_deps(store, grader), checkpointer=SqliteSaver(conn))
    thread = {"configurable": {"thread_id": "round-3"}}
    out = graph.invoke(collect_input(TASKS), thread)

    reopened = build_collect_graph(_deps(store, grader), checkpointer=SqliteSaver(conn))
    snapshot = reopened.get_state(thread)
    assert snapshot.next == ()
    assert snapshot.values["counts"] == out["counts"]
    assert set(snapshot.values["samples"]) == {t.id for t in TASKS}
    assert snapshot.values["debug"][C2.id]["turns"][1]["verdict"]["passed"] is True
    assert [t["id"] for t in snapshot.values["tasks"]] == [t.id for t in TASKS]
    assert "unregistered" not in caplog.text  # plain data only: nothing the serializer must guess
    conn.close()


def test_the_real_path_with_a_tiny_transformers_model(store, grader):
    from selfimprove.models.local import TransformersModel
    from selfimprove.testing import tiny_model

    model = TransformersModel.load(str(tiny_model()))
    code = C1.model_copy(update={"metadata": {**C1.metadata, "max_tokens": 24}})  # keep it quick
    tasks = [A1, A2, code]
    shown = Example(kind="positive", prompt=C2.prompt, completion=_fenced(C2.reference), round=0)
    store.add([shown])  # retrieved into the code task's prompt: a real chat-template path
    settings = CollectSettings(
        samples_per_task=2, debug_turns=1, round=1, temperature=0.8, retrieve_k=1
    )
    deps = CollectDeps(model, grader, store, settings)

    counts = collect(deps, tasks)

    assert counts["samples"] == 6
    assert counts["self_debug/debugged"] == 3 - counts["tasks_solved"]
    assert counts["retrieved"] == 3  # the one stored positive, for each task
    attempts = store.find({"kind": "attempt"})
    assert len(attempts) == counts["attempt"] >= 3
    assert counts.get("positive", 0) + counts.get("negative", 0) >= 3
    assert all(e.model == model.name and e.round == 1 and e.reason for e in attempts)
    stored = store.count()
    assert collect(deps, tasks) == counts  # seeded sampling: the same round again, the same counts
    assert store.count() == stored  # and nothing stored twice


def test_settings_refuse_unknown_operators():
    with pytest.raises(ValueError, match="'off_by_two'"):
        CollectSettings(operators=["off_by_one", "off_by_two"])


def test_make_collector_fits_the_round_graph_contract(store, grader):
    collector = make_collector(grader, store, CollectSettings(samples_per_task=1, seed=4))
    counts = collector(FakeChatModel(_script(), name="m"), [A1, A2], 5)  # (model, tasks, round)
    assert counts["positive"] == 2 and counts["new"] == store.count()
    assert {e.round for e in store.find()} == {5}

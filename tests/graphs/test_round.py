"""The round graph with injected parts: gate decisions, reports, crash and resume."""

import sqlite3
from types import SimpleNamespace

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver

from selfimprove.config import Config, StoreConfig
from selfimprove.eval.report import read_report
from selfimprove.graphs.round import RoundDeps, build_round_graph, initial_state
from selfimprove.memory import open_store
from selfimprove.tasks import Grader, TaskSet, builtin_tasks
from selfimprove.testing import FakeChatModel
from selfimprove.types import Example

HELDOUT = builtin_tasks("arithmetic", split="heldout", n=10)
TRAIN = builtin_tasks("arithmetic", split="train", n=6)
# How many held-out tasks each model folder gets right.
SKILL = {"base": 3, "model-1": 6, "model-2": 5, "model-3": 8}


LOADED: list[FakeChatModel] = []  # every model _model made, to check usage accounting


def _model(path: str) -> FakeChatModel:
    right = {t.prompt: t.answer for t in HELDOUT[: SKILL[path]]}
    LOADED.append(FakeChatModel(lambda prompt, i: right.get(prompt, "no idea"), name=path))
    return LOADED[-1]


class Parts:
    """Fake collect and train steps that record their calls and can crash once."""

    def __init__(self, store, crash_in_round=None):
        self.store, self.crash_in_round = store, crash_in_round
        self.collected, self.trained = [], []

    def collect(self, model, tasks, round):
        self.collected.append(round)
        examples = [
            Example(
                kind="positive",
                prompt=t.prompt,
                completion=t.answer,
                task_id=t.id,
                round=round,
                passed=True,
                metadata={"split": "train"},
            )
            for t in tasks
        ]
        return {"positive": self.store.add(examples)}

    def train(self, base, sft, dpo, config, out_dir):
        round = len(self.trained) + 1
        if round == self.crash_in_round:
            self.crash_in_round = None
            raise RuntimeError("simulated crash during training")
        self.trained.append((base, len(sft)))
        return SimpleNamespace(
            model_path=f"model-{round}", stages=[SimpleNamespace(losses=[1.0, 0.5])]
        )


def _deps(tmp_path, parts, rounds=3):
    config = Config()
    config.loop.rounds = rounds
    return RoundDeps(
        config=config,
        task_set=TaskSet(train=TRAIN, heldout=HELDOUT),
        store=parts.store,
        grader=Grader(),
        load_model=_model,
        collect=parts.collect,
        train=parts.train,
        out_dir=tmp_path,
        show_progress=False,
    )


def test_rounds_promote_only_improvements_and_write_the_report(tmp_path):
    parts = Parts(open_store(StoreConfig(backend="memory", embedding="hash")))
    graph = build_round_graph(_deps(tmp_path, parts))
    final = graph.invoke(initial_state("base"))
    records = read_report(tmp_path / "report.json")
    assert [(r.round, r.promoted) for r in records] == [(0, True), (1, True), (2, False), (3, True)]
    assert [r.metrics["heldout_pass_at_1"] for r in records] == [0.3, 0.6, 0.5, 0.8]
    assert final["incumbent"] == "model-3"
    # round 3 trains from model-1: round 2's rejected candidate was rolled back
    assert [base for base, _ in parts.trained] == ["base", "model-1", "model-1"]
    assert records[1].counts == records[2].counts == {"positive": 6}  # new round, new ids
    assert (tmp_path / "accuracy.png").exists() and (tmp_path / "summary.md").exists()
    assert set(records[0].timings) == {"evaluate"}
    assert set(records[1].timings) == {"collect", "train", "evaluate"}
    assert all(t >= 0 for r in records for t in r.timings.values())


def test_each_round_records_what_its_model_calls_spent(tmp_path):
    LOADED.clear()
    parts = Parts(open_store(StoreConfig(backend="memory", embedding="hash")))
    build_round_graph(_deps(tmp_path, parts, rounds=2)).invoke(initial_state("base"))
    records = read_report(tmp_path / "report.json")
    # the baseline, then per round the incumbent (to collect with) and the candidate
    assert [m.name for m in LOADED] == ["base", "base", "model-1", "model-1", "model-2"]
    evaluated = [LOADED[0], LOADED[2], LOADED[4]]  # Parts.collect makes no model calls
    by_record = [r.usage for r in records]
    assert [u["calls"] for u in by_record] == [m.usage.calls for m in evaluated] == [1, 1, 1]
    assert [u["completion_tokens"] for u in by_record] == [
        m.usage.completion_tokens for m in evaluated
    ]
    assert all(u["prompt_tokens"] > 0 and u["cost_usd"] == 0 for u in by_record)
    assert "| tokens |" in (tmp_path / "summary.md").read_text()


def test_crash_then_resume_finishes_without_redoing_finished_work(tmp_path):
    store = open_store(StoreConfig(backend="memory", embedding="hash"))
    parts = Parts(store, crash_in_round=2)
    conn = sqlite3.connect(tmp_path / "checkpoints.sqlite", check_same_thread=False)
    graph = build_round_graph(_deps(tmp_path, parts), checkpointer=SqliteSaver(conn))
    thread = {"configurable": {"thread_id": "run"}}
    with pytest.raises(RuntimeError, match="simulated crash"):
        graph.invoke(initial_state("base"), thread)
    assert parts.collected == [1, 2]
    # A new process would open the same database and build the graph again.
    resumed = build_round_graph(_deps(tmp_path, parts), checkpointer=SqliteSaver(conn))
    final = resumed.invoke(None, thread)
    assert parts.collected == [1, 2, 3]  # round 2's collect is not repeated, only training
    assert final["incumbent"] == "model-3"
    assert [r["round"] for r in final["records"]] == [0, 1, 2, 3]
    assert store.count({"kind": "positive"}) == 6 * 3


def test_a_round_without_training_data_keeps_the_incumbent(tmp_path):
    parts = Parts(open_store(StoreConfig(backend="memory", embedding="hash")))
    deps = _deps(tmp_path, parts, rounds=1)
    deps.collect = lambda model, tasks, round: {}
    final = build_round_graph(deps).invoke(initial_state("base"))
    assert final["incumbent"] == "base" and not parts.trained
    assert "no training data" in final["records"][-1]["reasons"][0]


def test_the_gate_rejects_a_candidate_that_regresses_on_the_guard_set(tmp_path):
    guard = builtin_tasks("arithmetic", split="heldout", n=16)[10:]  # apart from HELDOUT

    def load(path: str) -> FakeChatModel:
        right = {t.prompt: t.answer for t in HELDOUT[: SKILL[path]]}
        if path == "base":  # only the starting model knows the guard tasks
            right |= {t.prompt: t.answer for t in guard}
        return FakeChatModel(lambda prompt, i: right.get(prompt, "no idea"), name=path)

    parts = Parts(open_store(StoreConfig(backend="memory", embedding="hash")))
    deps = _deps(tmp_path, parts, rounds=1)
    deps.task_set = TaskSet(train=TRAIN, heldout=HELDOUT, guard=guard)
    deps.load_model = load
    final = build_round_graph(deps).invoke(initial_state("base"))
    base, one = read_report(tmp_path / "report.json")
    assert base.metrics["guard_pass_at_1"] == 1.0 and one.metrics["guard_pass_at_1"] == 0.0
    assert one.metrics["heldout_pass_at_1"] > base.metrics["heldout_pass_at_1"]
    assert not one.promoted and final["incumbent"] == "base"
    assert any("guard set regressed 1.000 -> 0.000" in r for r in one.reasons)
    assert (tmp_path / "round-0" / "guard.json").exists()

"""The round graph's agent steps with injected parts: augmentation, curriculum, curation."""

from __future__ import annotations

import json
from types import SimpleNamespace

from selfimprove.config import Config, StoreConfig
from selfimprove.eval.report import read_report
from selfimprove.graphs.round import RoundDeps, build_round_graph, initial_state
from selfimprove.graphs.round_agents import AUGMENTED, augmented_tasks
from selfimprove.memory import HashEmbeddings, InMemoryStore, open_store, open_workflows
from selfimprove.tasks import Grader, TaskSet, builtin_tasks
from selfimprove.tasks.suite import split_of
from selfimprove.testing import FakeChatModel
from selfimprove.types import Example

HELDOUT = builtin_tasks("arithmetic", split="heldout", n=8)
TRAIN = builtin_tasks("arithmetic", split="train", n=12)
EASY = {t.id for t in TRAIN[:4]}  # always solved
HARD = {t.id for t in TRAIN[4:8]}  # never solved; the rest: one sample in two


class Parts:
    """A collect step that stores sampled attempts (per the task's class) and positives."""

    def __init__(self, store):
        self.store, self.tasks, self.trained = store, {}, []

    def collect(self, model, tasks, round):
        self.tasks[round] = [t.id for t in tasks]
        examples = []
        for t in tasks:
            wins = 2 if t.id in EASY else 0 if t.id in HARD or t.id.startswith("aug-") else 1
            for j in range(2):
                text = t.answer if j < wins else f"{j}{t.answer}9"
                # identical answers are one attempt: "count" says how many samples gave it
                meta = {"split": "train", "finish_reason": "stop", "count": 2 if wins == 2 else 1}
                base = Example(kind="attempt", prompt=t.prompt, completion=text, task_id=t.id,
                               round=round, passed=j < wins, metadata=meta)  # fmt: skip
                examples.append(base)
                if j < wins:
                    examples.append(
                        base.model_copy(update={"kind": "positive", "parent_id": base.id})
                    )
        return {"new": self.store.add(examples)}

    def train(self, base, sft, dpo, config, out_dir):
        self.trained.append(len(sft))
        return SimpleNamespace(model_path=f"model-{len(self.trained)}", stages=[])


def _deps(tmp_path, parts, **loop) -> RoundDeps:
    config = Config()
    config.loop.rounds = 2
    config.loop.tasks_per_round = 8
    for key, value in loop.items():
        setattr(config.loop, key, value)
    return RoundDeps(
        config=config,
        task_set=TaskSet(train=TRAIN, heldout=HELDOUT),
        store=parts.store,
        grader=Grader(),
        load_model=lambda path: FakeChatModel("no idea", name=path),
        collect=parts.collect,
        train=parts.train,
        out_dir=tmp_path,
        show_progress=False,
    )


def _store():
    return open_store(StoreConfig(backend="memory", embedding="hash"))


def test_augmentation_writes_verified_tasks_near_failures_and_the_next_round_tries_them(tmp_path):
    parts = Parts(_store())
    deps = _deps(tmp_path, parts, augment=True, augment_max=16, augment_per_failure=4)
    build_round_graph(deps).invoke(initial_state("base"))
    written = augmented_tasks(tmp_path, 3)
    assert set(written) == {1, 2} and 4 < len(written[1]) <= 16
    failed_round_1 = set(parts.tasks[1]) & HARD
    by_id = {t.id: t for t in TRAIN}
    for task in written[1]:
        parent = by_id[task.metadata["augmented_from"]]
        assert parent.id in failed_round_1 and task.difficulty == parent.difficulty
        assert split_of(task.metadata.get("split_key", task.prompt)) == "train"
        assert Grader().grade([task], [task.answer])[0].passed  # verified solvable
    # round 2 starts with round 1's new tasks, at most half its 8 tasks: same cost per round
    assert parts.tasks[2][:4] == [t.id for t in written[1][:4]]
    assert len(parts.tasks[2]) == len(set(parts.tasks[2])) == 8  # the rest: drawn from the pool
    pool = {t.id for t in TRAIN} | {t.id for t in written[1]}  # new tasks join the pool
    assert set(parts.tasks[2]) <= pool
    records = read_report(tmp_path / "report.json")
    assert records[1].counts["augment/tasks"] == len(written[1])
    assert records[2].counts["tasks/augmented"] == 4
    assert "augment" in records[1].timings


def test_a_resumed_augmentation_reuses_the_tasks_it_wrote(tmp_path):
    parts = Parts(_store())
    deps = _deps(tmp_path, parts, augment=True, rounds=1)
    (tmp_path / "round-1").mkdir()
    (tmp_path / "round-1" / AUGMENTED).write_text("")  # written before a crash: none
    build_round_graph(deps).invoke(initial_state("base"))
    assert augmented_tasks(tmp_path, 2) == {1: []}


def test_the_curriculum_skips_tasks_always_or_never_solved(tmp_path):
    parts = Parts(_store())
    deps = _deps(tmp_path, parts, curriculum=True, curriculum_min_attempts=2, rounds=2)
    deps.config.loop.tasks_per_round = None  # every task each round
    build_round_graph(deps).invoke(initial_state("base"))
    assert len(parts.tasks[1]) == len(TRAIN)  # no history yet
    assert set(parts.tasks[2]) == {t.id for t in TRAIN} - EASY - HARD
    counts = read_report(tmp_path / "report.json")[2].counts
    assert counts["curriculum/skipped_solved"] == 4 and counts["curriculum/skipped_unsolved"] == 4


class _Recording(InMemoryStore):
    """An in-memory store that records the filters ``find`` is asked for."""

    def __init__(self):
        super().__init__(HashEmbeddings())
        self.found = []

    def find(self, where=None, *, limit=None):
        self.found.append(where)
        return super().find(where, limit=limit)


def test_the_curriculum_reads_each_earlier_round_once(tmp_path):
    parts = Parts(_Recording())
    deps = _deps(tmp_path, parts, curriculum=True, curriculum_min_attempts=2, rounds=3)
    deps.config.loop.tasks_per_round = None
    build_round_graph(deps).invoke(initial_state("base"))
    history = [w for w in parts.store.found if w and w.get("agent") == "student"]
    # all rounds before round 1 once, then only the round just finished: its cost does not
    # grow with the store
    student = {"kind": "attempt", "agent": "student"}
    assert history == [
        student | {"round": {"$lt": 1}},
        student | {"round": 1},
        student | {"round": 2},
    ]
    assert set(parts.tasks[3]) == {t.id for t in TRAIN} - EASY - HARD  # the same choice


def test_curation_drops_low_confidence_examples_before_training(tmp_path):
    parts = Parts(_store())
    deps = _deps(tmp_path, parts, curate=True, curate_min_confidence=0.75, rounds=1)
    deps.config.loop.tasks_per_round = None
    deps.config.loop.curate_near_duplicate = None
    build_round_graph(deps).invoke(initial_state("base"))
    counts = read_report(tmp_path / "report.json")[1].counts
    # easy tasks: 2/2 samples passed (confidence 1); the half-solved ones: 0.5 < 0.75
    assert parts.trained == [len(EASY)]
    assert counts["curate/positives_in"] == 8 and counts["curate/low_confidence"] == 4


def test_with_a_teacher_augmentation_keeps_only_the_tasks_it_wrote_correctly(tmp_path):
    def teacher(prompt: str, i: int) -> str:
        if i % 2:  # every other task has a wrong answer: its reference fails, it is dropped
            return json.dumps({"prompt": f"What is {i} + 100? Answer with just the number.",
                               "answer": "oops"})  # fmt: skip
        return json.dumps({"prompt": f"What is {i} + 100? Answer with just the number.",
                           "answer": str(i + 100)})  # fmt: skip

    parts = Parts(_store())
    deps = _deps(tmp_path, parts, augment=True, rounds=1)
    deps.teacher = FakeChatModel(teacher, name="teacher")
    build_round_graph(deps).invoke(initial_state("base"))
    [written] = augmented_tasks(tmp_path, 2).values()
    counts = read_report(tmp_path / "report.json")[1].counts
    assert written and all(t.metadata["origin"] == "teacher" for t in written)
    assert all(Grader().grade([t], [t.answer])[0].passed for t in written)
    assert counts["augment/rejected/unsolvable"] == counts["augment/proposed"] - len(written)
    assert counts["augment/rejected/unsolvable"] >= 1


def test_workflows_are_induced_offline_from_the_training_references_before_round_one(tmp_path):
    parts = Parts(_store())
    deps = _deps(tmp_path, parts, workflows=True, rounds=1)
    deps.workflows = open_workflows(parts.store)
    build_round_graph(deps).invoke(initial_state("base"))
    baseline = read_report(tmp_path / "report.json")[0]
    made = deps.workflows.all()
    assert baseline.counts["workflows/offline"] == len(made) > 0
    assert all(w.origin == "offline" for w in made)
    assert {w.scope for w in made} == {f"arithmetic:{t.difficulty}" for t in TRAIN}

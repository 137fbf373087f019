"""The curriculum: per-task records from stored attempts, and difficulty-aware selection."""

from __future__ import annotations

import random

import pytest

from selfimprove.memory import HashEmbeddings, InMemoryStore
from selfimprove.tasks.curriculum import TaskHistory, TaskRecord, select_tasks, task_records
from selfimprove.types import Example, Task


def _attempt(task_id: str, round: int, passed: bool, text: str, **update) -> Example:
    return Example(
        kind="attempt",
        prompt=f"prompt of {task_id}",
        completion=text,
        task_id=task_id,
        round=round,
        passed=passed,
        metadata={"suite": "arithmetic", "split": "train"},
    ).model_copy(update=update)


@pytest.fixture
def store() -> InMemoryStore:
    store = InMemoryStore(HashEmbeddings())
    store.add(
        [
            _attempt("a", 0, True, "4"),
            _attempt("a", 0, False, "5"),
            _attempt("a", 2, True, "4"),
            _attempt("b", 1, False, "7"),
            _attempt("b", 1, True, "8", agent="self_debug"),  # a fix, not a sample
            _attempt("b", 1, True, "8", kind="positive"),  # lineage, not an attempt
            _attempt("c", 3, True, "1", metadata={"count": 3}),  # three samples said "1"
            _attempt("c", 3, False, "2"),
            _attempt("heldout-1", 0, True, "9"),
        ]
    )
    return store


def test_records_count_student_attempts_only(store):
    records = task_records(store)
    assert records["a"] == TaskRecord(attempts=3, passed=2, rounds=[0, 2])
    assert records["b"] == TaskRecord(attempts=1, passed=0, rounds=[1])
    assert records["c"] == TaskRecord(attempts=4, passed=3, rounds=[3])
    assert records["a"].rate == pytest.approx(2 / 3) and records["b"].rate == 0.0
    assert TaskRecord().rate is None
    assert set(records) == {"a", "b", "c", "heldout-1"}


def test_records_filter_by_task_and_round(store):
    assert set(task_records(store, ["a", "b", "zzz"])) == {"a", "b"}
    early = task_records(store, before_round=2)
    assert early["a"] == TaskRecord(attempts=2, passed=1, rounds=[0])
    assert "c" not in early
    assert task_records(store, []) == {}
    assert task_records(store, ["a"], before_round=0) == {}


class _Asked:
    """A store that records the filters asked of it."""

    def __init__(self, store):
        self.store, self.wheres = store, []

    def find(self, where=None, *, limit=None):
        self.wheres.append(where)
        return self.store.find(where, limit=limit)


def test_a_task_history_answers_as_task_records_reading_each_round_once(store):
    asked = _Asked(store)
    history = TaskHistory(asked)
    student = {"kind": "attempt", "agent": "student"}
    assert history.records(before_round=1) == task_records(store, before_round=1)
    assert history.records(["a", "b"], before_round=3) == task_records(
        store, ["a", "b"], before_round=3
    )
    assert history.records(before_round=3) == task_records(store, before_round=3)
    assert asked.wheres == [
        student | {"round": {"$lt": 1}},
        student | {"round": 1},
        student | {"round": 2},
    ]
    records = history.records(before_round=4)
    assert records == task_records(store, before_round=4) and asked.wheres[-1] == student | {
        "round": 3
    }
    records["a"].attempts = 99  # the caller's copy
    assert history.records(before_round=4)["a"].attempts == 3
    # an earlier round than before: read everything again
    assert history.records(before_round=2) == task_records(store, before_round=2)
    assert asked.wheres[-1] == student | {"round": {"$lt": 2}} and len(asked.wheres) == 5


def _tasks(n: int) -> list[Task]:
    return [Task(id=f"t{i}", prompt=f"What is {i} + 1?", answer=str(i + 1)) for i in range(n)]


TASKS = _tasks(8)
RECORDS = {
    "t0": TaskRecord(attempts=4, passed=4),  # always solved: skipped
    "t1": TaskRecord(attempts=5, passed=0),  # never solved: skipped
    "t2": TaskRecord(attempts=4, passed=2),  # mixed: kept
    "t3": TaskRecord(attempts=3, passed=3),  # too few attempts to judge: kept
    "t4": TaskRecord(attempts=2, passed=0),  # too few attempts to judge: kept
    "t5": TaskRecord(attempts=6, passed=6),  # always solved: skipped
    "t6": TaskRecord(attempts=0, passed=0),  # unseen
    # t7: no record, unseen
}


def test_select_skips_always_and_never_solved_tasks():
    chosen, counts = select_tasks(TASKS, RECORDS, None, random.Random(0))
    assert [t.id for t in chosen] == ["t2", "t3", "t4", "t6", "t7"]
    assert counts == {
        "kept": 5,
        "unseen": 2,
        "skipped_solved": 2,
        "skipped_unsolved": 1,
        "filled": 0,
        "selected": 5,
    }
    # with a lower bar the short records count too
    chosen, counts = select_tasks(TASKS, RECORDS, None, random.Random(0), min_attempts=2)
    assert [t.id for t in chosen] == ["t2", "t6", "t7"]
    assert counts["skipped_solved"] == 3 and counts["skipped_unsolved"] == 2


def test_select_draws_k_deterministically_from_the_kept_tasks():
    kept = {"t2", "t3", "t4", "t6", "t7"}
    draws = {
        tuple(t.id for t in select_tasks(TASKS, RECORDS, 3, random.Random(s))[0]) for s in range(20)
    }
    assert all(len(d) == 3 and set(d) <= kept and list(d) == sorted(d) for d in draws)
    assert len(draws) > 1  # it is a draw
    same = select_tasks(TASKS, RECORDS, 3, random.Random(7))
    assert same == select_tasks(TASKS, RECORDS, 3, random.Random(7))
    assert select_tasks(TASKS, RECORDS, 0, random.Random(0))[0] == []


def test_select_fills_from_never_solved_before_always_solved():
    chosen, counts = select_tasks(TASKS, RECORDS, 6, random.Random(0))
    assert [t.id for t in chosen] == ["t1", "t2", "t3", "t4", "t6", "t7"]
    assert counts["filled"] == 1 and counts["selected"] == 6
    chosen, counts = select_tasks(TASKS, RECORDS, 7, random.Random(0))
    ids = {t.id for t in chosen}
    assert len(ids) == 7 and "t1" in ids and len(ids & {"t0", "t5"}) == 1
    assert counts["filled"] == 2
    # more than there are: every task once
    chosen, _ = select_tasks(TASKS, RECORDS, 50, random.Random(0))
    assert [t.id for t in chosen] == [t.id for t in TASKS]
    with pytest.raises(ValueError, match="k must be None or >= 0, got -1"):
        select_tasks(TASKS, RECORDS, -1, random.Random(0))

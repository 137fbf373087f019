"""The one conformance suite every ``ExampleStore`` backend must pass.

Each test runs against in-memory, embedded Chroma and Chroma over HTTP (see
``conftest.py``). Run just this file with
``.venv/bin/pytest tests/memory/test_conformance.py -q``.
"""

from __future__ import annotations

from typing import Any

import pytest

from selfimprove.memory import ExampleStore, matches
from selfimprove.types import Example

P, N, PAIR, R, W, A = "pos", "neg", "pair", "rev", "wf", "att"
ALL = {P, N, PAIR, R, W, A}

# (filter, names of the sample_corpus examples it must select)
FILTERS: list[tuple[dict[str, Any] | None, set[str]]] = [
    (None, ALL),
    ({}, ALL),
    ({"kind": "positive"}, {P, R}),
    ({"kind": {"$eq": "pair"}}, {PAIR}),
    ({"kind": {"$ne": "positive"}}, {N, PAIR, W, A}),
    ({"round": {"$gt": 1}}, {R, W, A}),
    ({"round": {"$gte": 1}}, {N, PAIR, R, W, A}),
    ({"round": {"$lt": 1}}, {P}),
    ({"round": {"$lte": 1}}, {P, N, PAIR}),
    ({"round": {"$gte": 1, "$lt": 3}}, {N, PAIR, R, A}),
    ({"agent": {"$in": ["teacher", "curator"]}}, {R, W}),
    ({"agent": {"$nin": ["student"]}}, {N, R, W}),
    ({"model": ""}, {PAIR, W, A}),
    ({"passed": True}, {P, R}),
    ({"passed": False}, {N}),
    ({"passed": None}, {PAIR, W, A}),
    ({"passed": {"$ne": True}}, {N, PAIR, W, A}),
    ({"passed": {"$ne": None}}, {P, N, R}),
    ({"passed": 1}, set()),  # bools never equal numbers
    ({"parent_id": None}, {P, R, W, A}),
    ({"parent_id": "p-root"}, {N, PAIR}),
    ({"task_id": {"$in": [None, "rev-1"]}}, {R, W}),
    ({"task_id": {"$nin": [None, "add-1"]}}, {R, A}),
    ({"task_id": {"$in": [None]}}, {W}),
    ({"error_type": "off_by_ten"}, {N}),
    ({"error_type": {"$ne": "off_by_ten"}}, ALL - {N}),
    ({"suite": "arith"}, {P, N, PAIR}),
    ({"metadata.suite": "strings"}, {R}),
    ({"suite": {"$ne": "arith"}}, {R, W, A}),  # a missing key satisfies $ne
    ({"suite": {"$nin": ["arith", "lists"]}}, {R, W}),
    ({"score": {"$gte": 0.5}}, {P, R}),
    ({"score": 1}, {P}),  # 1 equals 1.0
    ({"tries": {"$lt": 2}}, {P, A}),
    ({"hard": True}, {N}),
    ({"hard": False}, {P}),
    ({"hard": {"$ne": True}}, ALL - {N}),
    ({"kind": "positive", "suite": "arith"}, {P}),
    ({"$and": [{"kind": "positive"}, {"round": {"$gte": 1}}]}, {R}),
    ({"$or": [{"kind": "workflow"}, {"error_type": "off_by_ten"}]}, {W, N}),
    ({"$or": [{"kind": "workflow"}]}, {W}),
    ({"$and": [{"$or": [{"kind": "positive"}, {"kind": "negative"}]}, {"suite": "arith"}]}, {P, N}),
    ({"$or": [{}, {"kind": "pair"}]}, ALL),
    ({"$or": [{"passed": None}, {"hard": True}], "round": {"$lte": 2}}, {N, PAIR, A}),
    # an equality on round, task_id or parent_id beside other clauses (Chroma narrows by it)
    ({"parent_id": "p-root", "kind": "pair"}, {PAIR}),
    ({"$and": [{"task_id": "add-1"}, {"passed": {"$ne": True}}]}, {N, PAIR}),
    ({"round": 2, "$or": [{"agent": "teacher"}, {"kind": "attempt"}]}, {R, A}),
    ({"task_id": {"$eq": "add-1"}, "round": 1, "error_type": None}, {PAIR}),
    ({"task_id": {"$in": ["add-1", "sort-1"]}, "kind": "attempt"}, {A}),
]

BAD_FILTERS = [
    {"prompt": "What is 17 + 25?"},  # text fields are not filterable
    {"round": {"$gt": "1"}},
    {"passed": {"$gt": True}},
    {"suite": None},  # None only on nullable lineage fields
    {"round": None},
    {"kind": {"$in": []}},
    {"kind": {"$in": "positive"}},
    {"round": {"$in": [1, "a"]}},
    {"kind": {"$regex": "pos"}},
    {"$and": []},
    {"$or": {"kind": "pair"}},
    {"$not": {"kind": "pair"}},
    {"suite": {"$eq": ["a"]}},
    ["kind", "pair"],
]


@pytest.fixture
def filled(make_store, corpus) -> tuple[ExampleStore, dict[str, Example]]:
    store = make_store()
    assert store.add(corpus.values()) == len(corpus)
    return store, corpus


def _names(corpus: dict[str, Example], examples: list[Example]) -> list[str]:
    by_id = {e.id: name for name, e in corpus.items()}
    return [by_id[e.id] for e in examples]


def test_add_is_idempotent(make_store, corpus):
    store = make_store()
    assert isinstance(store, ExampleStore)
    examples = list(corpus.values())
    assert store.add(examples[:3]) == 3
    assert store.add(examples[:3]) == 0
    assert store.add(examples + examples[:1]) == 3  # duplicates inside one batch count once
    assert store.add([]) == 0
    assert store.count() == len(examples)


def test_add_keeps_the_first_version_of_an_id(make_store, corpus):
    store = make_store()
    first = corpus[P]
    # Same id (metadata and verdict are not part of it), different details.
    second = first.model_copy(update={"metadata": {"suite": "other"}, "reason": "changed"})
    assert second.id == first.id
    store.add([first])
    assert store.add([second]) == 0
    assert store.get([first.id]) == [first]


def test_get_in_requested_order_skipping_unknown(filled):
    store, corpus = filled
    ids = [corpus[R].id, "no-such-id", corpus[P].id, corpus[R].id]
    assert store.get(ids) == [corpus[R], corpus[P]]
    assert store.get([]) == []
    with pytest.raises(TypeError, match="wrap it in a list"):
        store.get(corpus[P].id)


def test_round_trip_is_exact(make_store):
    full = Example(
        kind="pair",
        prompt="Ünïcode prompt ✓\n\twith tabs",
        completion="chosen  ",
        rejected="",
        task_id="",
        round=7,
        agent="teacher",
        model="openai/x",
        parent_id="abc",
        passed=False,
        reason="why",
        error_type="type_error",
        metadata={"s": "x", "i": -3, "big": 2**62, "f": 0.1 + 0.2, "t": True, "fa": False, "e": ""},
    )
    empty = Example(kind="attempt", prompt="")
    store = make_store()
    store.add([full, empty])
    for got in (store.get([full.id, empty.id]), store.find()):
        assert got == [full, empty]
        assert [g.model_dump() for g in got] == [full.model_dump(), empty.model_dump()]
        assert type(got[0].metadata["t"]) is bool and type(got[0].metadata["i"]) is int
    assert {hit.example.id for hit in store.search("Ünïcode prompt", k=2)} == {full.id, empty.id}


def test_find_and_count_with_every_filter(filled):
    store, corpus = filled
    wrong = []
    for where, expected in FILTERS:
        assert {name for name, e in corpus.items() if matches(e, where)} == expected, where
        found = _names(corpus, store.find(where))
        if set(found) != expected or len(found) != len(expected):
            wrong.append(("find", where, sorted(found), sorted(expected)))
        if store.count(where) != len(expected):
            wrong.append(("count", where, store.count(where), len(expected)))
    assert not wrong, "\n".join(map(repr, wrong))


def test_find_keeps_insertion_order_and_limit(filled):
    store, corpus = filled
    assert _names(corpus, store.find()) == list(corpus)
    assert _names(corpus, store.find(limit=2)) == list(corpus)[:2]
    assert _names(corpus, store.find({"kind": {"$ne": "positive"}}, limit=2)) == [N, PAIR]
    assert _names(
        corpus, store.find({"task_id": "add-1", "kind": {"$ne": "positive"}}, limit=1)
    ) == [N]
    assert store.find(limit=0) == []
    with pytest.raises(ValueError, match="limit"):
        store.find(limit=-1)


@pytest.mark.parametrize("where", BAD_FILTERS, ids=repr)
def test_bad_filters_raise_value_error(filled, where):
    store, _ = filled
    with pytest.raises(ValueError):
        store.find(where)
    with pytest.raises(ValueError):
        store.search("x", where=where)


def test_search_ranks_the_semantically_closest_first(make_store, minilm):
    store = make_store(minilm)
    add = Example(kind="positive", prompt="Compute 17 + 25.", completion="42")
    rev = Example(kind="positive", prompt="Reverse the string 'hello'.", completion="olleh")
    sort = Example(kind="positive", prompt="Sort the list [3, 1, 2].", completion="[1, 2, 3]")
    store.add([rev, add, sort])
    hits = store.search("adding two numbers", k=3)
    assert [h.example for h in hits][0] == add
    assert len(hits) == 3
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0 <= s <= 1.0 for s in scores)
    assert store.search(add.document, k=1)[0].score == pytest.approx(1.0, abs=1e-4)


def test_search_respects_filters_and_k(filled):
    store, corpus = filled
    hits = store.search("What is 17 + 25?", k=10, where={"kind": {"$in": ["negative", "workflow"]}})
    assert {h.example.kind for h in hits} == {"negative", "workflow"}
    assert _names(corpus, [h.example for h in hits])[0] == N
    assert len(store.search("What is 17 + 25?", k=1)) == 1
    assert len(store.search("anything", k=100)) == len(corpus)
    assert store.search("anything", where={"kind": "positive", "round": 99}) == []
    with pytest.raises(ValueError, match="k must be"):
        store.search("x", k=0)


def test_search_on_an_empty_store(make_store):
    store = make_store()
    assert store.search("anything") == []
    assert store.count() == 0 and store.find() == []


def test_delete(filled):
    store, corpus = filled
    assert store.delete([corpus[P].id, corpus[N].id, "no-such-id", corpus[P].id]) == 2
    assert store.delete([corpus[P].id]) == 0
    assert store.count() == len(corpus) - 2
    assert store.get([corpus[P].id]) == []
    assert P not in _names(corpus, [h.example for h in store.search(corpus[P].document, k=10)])
    assert store.count({"suite": "arith"}) == 1
    assert store.add([corpus[P]]) == 1  # deleted ids can come back
    assert store.get([corpus[P].id]) == [corpus[P]]


def test_near_duplicates(make_store, minilm):
    store = make_store(minilm)
    original = Example(
        kind="positive",
        prompt="Write a function that returns the sum of two integers a and b.",
        completion="def add(a, b):\n    return a + b",
    )
    near_copy = original.model_copy(update={"completion": "def add(a, b):\n    return a+b"})
    paraphrase = Example(
        kind="positive",
        prompt="Implement a function which adds two integers a and b and returns the result.",
        completion="def add(a, b):\n    return a + b",
    )
    unrelated = Example(
        kind="positive", prompt="What is the capital of France?", completion="Paris"
    )
    store.add([original, near_copy, paraphrase, unrelated])

    found = store.near_duplicates(original)  # default threshold 0.95
    assert near_copy in [h.example for h in found]
    assert original not in [h.example for h in found]  # the query example itself is left out
    assert unrelated not in [h.example for h in found]

    loose = [h.example for h in store.near_duplicates(original, threshold=0.9)]
    assert paraphrase in loose and unrelated not in loose

    by_text = store.near_duplicates(original.document, threshold=0.99)
    assert {h.example.id for h in by_text} == {original.id, near_copy.id}
    assert store.near_duplicates("Paris is in France", where={"kind": "negative"}) == []


def test_near_duplicates_beyond_the_first_page(make_store):
    store = make_store()
    copies = [
        Example(kind="attempt", prompt="the same prompt", completion=f"{i}") for i in range(40)
    ]
    store.add(copies)
    assert len(store.near_duplicates("the same prompt", threshold=0.5)) == 40


def test_metadata_key_shadowing_a_lineage_field(make_store):
    store = make_store()
    shadow = Example(kind="positive", prompt="p", metadata={"kind": "custom", "prompt": "x"})
    store.add([shadow])
    assert store.find({"kind": "positive"}) == [shadow]
    assert store.find({"metadata.kind": "custom"}) == [shadow]
    assert store.find({"metadata.prompt": "x"}) == [shadow]
    assert store.find({"metadata.kind": "positive"}) == []

"""Chroma-only behaviour: reopening after a restart, embedding registration, encoding, batching."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import chromadb
import pytest

from selfimprove.config import StoreConfig
from selfimprove.memory import ChromaStore, HashEmbeddings, InMemoryStore, chroma, open_store
from selfimprove.memory.chroma import decode_metadata, encode_metadata, narrowing, to_chroma_where
from selfimprove.types import Example


def test_reopen_with_a_new_client_uses_the_persisted_embedding(tmp_path, corpus):
    first = ChromaStore.persistent(tmp_path, "examples", HashEmbeddings())
    first.add(corpus.values())
    reopened = ChromaStore(chromadb.PersistentClient(path=str(tmp_path)), "examples")
    assert reopened.embeddings.name() == HashEmbeddings.name()
    assert reopened.count() == len(corpus)
    assert reopened.get([corpus["rev"].id]) == [corpus["rev"]]
    assert reopened.search("Reverse the string 'hello'.", k=1)[0].example == corpus["rev"]
    assert reopened.add(corpus.values()) == 0


def test_reopen_in_a_fresh_process(tmp_path, corpus):
    store = open_store(StoreConfig(path=tmp_path, collection="lineage", embedding="hash"))
    store.add(corpus.values())
    # The child opens the store through the config, then reads it with plain chromadb
    # and no embedding function passed: that only works because importing
    # selfimprove.memory registered ours.
    script = textwrap.dedent(
        f"""
        import json
        from selfimprove.config import StoreConfig
        from selfimprove.memory import open_store
        import chromadb
        store = open_store(StoreConfig(path={str(tmp_path)!r}, collection="lineage", embedding="hash"))
        hit = store.search("Reverse the string 'hello'.", k=1)[0]
        raw = chromadb.PersistentClient(path={str(tmp_path)!r}).get_collection("lineage")
        by_text = raw.query(query_texts=["Sort the list [3, 1, 2]."], n_results=1)
        print(json.dumps({{
            "count": store.count(),
            "roots": store.count({{"parent_id": None}}),
            "examples": [e.model_dump() for e in store.find()],
            "top": hit.example.id,
            "raw_top": by_text["ids"][0][0],
        }}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["count"] == len(corpus)
    assert seen["roots"] == 4
    assert seen["examples"] == [e.model_dump() for e in corpus.values()]
    assert seen["top"] == corpus["rev"].id
    assert seen["raw_top"] == corpus["att"].id


def test_reopen_over_http_with_a_new_client(chroma_server, corpus):
    host, port = chroma_server
    ChromaStore.http(host, port, "http-reopen", HashEmbeddings()).add(corpus.values())
    reopened = open_store(
        StoreConfig(
            backend="chroma-http", host=host, port=port, collection="http-reopen", embedding="hash"
        )
    )
    assert reopened.count() == len(corpus)
    assert reopened.find({"kind": "pair"}) == [corpus["pair"]]
    raw = chromadb.HttpClient(host=host, port=port).get_collection("http-reopen")
    assert raw.query(query_texts=["Sort the list [3, 1, 2]."], n_results=1)["ids"][0] == [
        corpus["att"].id
    ]


def test_open_store_builds_each_backend(tmp_path):
    assert isinstance(open_store(StoreConfig(backend="memory", embedding="hash")), InMemoryStore)
    store = open_store(StoreConfig(path=tmp_path / "store", embedding="hash"))
    assert isinstance(store, ChromaStore)
    assert store.collection.configuration["hnsw"]["space"] == "cosine"


def test_reopening_with_another_embedding_is_refused(tmp_path, minilm):
    ChromaStore.persistent(tmp_path, "examples", HashEmbeddings())
    with pytest.raises(ValueError, match="selfimprove-hash"):
        ChromaStore.persistent(tmp_path, "examples", minilm)


def test_a_foreign_collection_is_refused(tmp_path):
    client = chromadb.PersistentClient(path=str(tmp_path))
    client.create_collection("foreign", configuration={"hnsw": {"space": "l2"}})
    with pytest.raises(ValueError, match="'l2' space"):
        ChromaStore(client, "foreign", HashEmbeddings())


def test_batches_larger_than_chromas_limit(tmp_path):
    store = ChromaStore.persistent(tmp_path, "examples", HashEmbeddings())
    store.batch_size = 3  # pretend the server accepts only 3 records per call
    examples = [Example(kind="attempt", prompt=f"task {i}", completion=str(i)) for i in range(10)]
    assert store.add(examples[:8]) == 8
    assert store.add(examples) == 2
    ids = [e.id for e in reversed(examples)]
    assert store.get(ids) == list(reversed(examples))
    assert store.delete(ids[:7]) == 7
    assert store.count() == 3


def test_encoding_is_flat_and_reversible(corpus):
    for example in corpus.values():
        metadata = encode_metadata(example)
        assert all(isinstance(v, (str, int, float, bool)) for v in metadata.values())
        assert decode_metadata(metadata) == example
    neg = encode_metadata(corpus["neg"])
    assert neg["parent_id"] == "p-root" and "null.parent_id" not in neg
    assert neg["metadata.hard"] is True and neg["round"] == 1
    assert encode_metadata(corpus["pos"])["null.parent_id"] is True


def test_encoding_refuses_values_chroma_cannot_filter():
    with pytest.raises(ValueError, match="64-bit"):
        encode_metadata(Example(kind="attempt", prompt="p", metadata={"n": 2**70}))
    with pytest.raises(ValueError, match="not finite"):
        encode_metadata(Example(kind="attempt", prompt="p", metadata={"x": float("nan")}))


def test_where_translation():
    assert to_chroma_where(None) is None
    assert to_chroma_where({"kind": "pair"}) == {"kind": {"$eq": "pair"}}
    assert to_chroma_where({"parent_id": None}) == {"null.parent_id": True}
    assert to_chroma_where({"passed": {"$ne": None}}) == {"null.passed": {"$ne": True}}
    assert to_chroma_where({"suite": {"$in": ["a", "b"]}}) == {
        "metadata.suite": {"$in": ["a", "b"]}
    }
    assert to_chroma_where({"task_id": {"$nin": [None, "t"]}}) == {
        "$and": [{"task_id": {"$nin": ["t"]}}, {"null.task_id": {"$ne": True}}]
    }
    assert to_chroma_where({"kind": "pair", "round": {"$gt": 0, "$lt": 3}}) == {
        "$and": [
            {"kind": {"$eq": "pair"}},
            {"$and": [{"round": {"$gt": 0}}, {"round": {"$lt": 3}}]},
        ]
    }
    assert to_chroma_where({"$or": [{"kind": "pair"}]}) == {"kind": {"$eq": "pair"}}
    assert to_chroma_where({"$or": [{}, {"kind": "pair"}]}) is None


def test_narrowing_keeps_the_equalities_on_round_task_and_parent():
    assert narrowing(None) == (None, False)
    assert narrowing({"round": 2}) == ({"round": 2}, False)
    assert narrowing({"kind": "positive"}) == (None, True)
    assert narrowing({"kind": "positive", "round": {"$eq": 2}}) == ({"round": {"$eq": 2}}, True)
    nested = {"$and": [{"kind": "pair"}, {"$and": [{"round": 2}, {"task_id": "t"}]}]}
    assert narrowing(nested) == ({"$and": [{"round": 2}, {"task_id": "t"}]}, True)
    assert narrowing({"task_id": {"$in": ["a", "b"]}, "kind": "pair"}) == (
        {"task_id": {"$in": ["a", "b"]}},
        True,
    )
    # ranges, exclusions, None and anything under $or match too much to narrow by
    assert narrowing({"round": {"$lt": 3}, "kind": "pair"}) == (None, True)
    assert narrowing({"task_id": {"$nin": ["a"]}, "kind": "pair"}) == (None, True)
    assert narrowing({"parent_id": None, "kind": "pair"}) == (None, True)
    assert narrowing({"task_id": {"$in": ["a", None]}, "kind": "pair"}) == (None, True)
    assert narrowing({"$or": [{"round": 1}, {"round": 2}]}) == (None, True)


class _Recording:
    """A Chroma collection that records the filters it is asked for."""

    def __init__(self, collection):
        self._collection = collection
        self.calls = []

    def get(self, **kwargs):
        self.calls.append(("get", kwargs.get("where"), kwargs.get("limit")))
        return self._collection.get(**kwargs)

    def query(self, **kwargs):
        self.calls.append(("query", kwargs.get("where"), kwargs["n_results"]))
        return self._collection.query(**kwargs)

    def __getattr__(self, name):
        return getattr(self._collection, name)


def _rounds() -> list[Example]:
    """Four rounds of attempts, positives and pairs of ten tasks, some held out."""
    out = []
    for r in range(4):
        for t in range(10):
            split = "heldout" if t >= 8 else "train"
            meta = {"suite": "arith", "split": split}
            prompt = f"What is {t} + {r}? Show your steps."
            attempt = Example(kind="attempt", prompt=prompt, completion=f"{t} plus {r} is {t + r}",
                              task_id=f"t{t}", round=r, passed=t % 3 > 0, metadata=meta)  # fmt: skip
            out.append(attempt)
            if attempt.passed:
                positive = attempt.model_copy(update={"kind": "positive", "parent_id": attempt.id})
                wrong = f"{t} plus {r} is {t + r + 1}"
                out += [positive, positive.model_copy(update={"kind": "pair", "rejected": wrong})]
    return out


# Filters as the loop writes them: a round's examples of a kind, earlier positives of other tasks.
ROUND_FILTERS = [
    {"$and": [{"kind": "positive"}, {"$and": [{"round": 2}, {"split": {"$ne": "heldout"}}]}]},
    {"$and": [{"kind": "attempt"}, {"round": 3}, {"agent": "student"}]},
    {"kind": "pair", "task_id": "t4"},
    {"$and": [{"round": 1}, {"$or": [{"kind": "pair"}, {"passed": False}]}]},
    {
        "$and": [
            {"kind": "positive"},
            {"round": {"$lt": 3}},
            {"task_id": {"$ne": "t1"}},
            {"split": {"$ne": "heldout"}},
        ]
    },
    {"$and": [{"kind": "attempt"}, {"task_id": {"$in": ["t2", "t5"]}}]},
    {"kind": "positive", "round": 9},
]


def _rounds_in_both(tmp_path) -> tuple[ChromaStore, InMemoryStore]:
    """``_rounds()`` in an embedded Chroma store and in the reference store."""
    examples = _rounds()
    store = ChromaStore.persistent(tmp_path, "rounds", HashEmbeddings())
    reference = InMemoryStore(HashEmbeddings())
    store.add(examples)
    reference.add(examples)
    return store, reference


def test_filters_narrowed_by_round_or_task_answer_as_the_reference(tmp_path):
    store, reference = _rounds_in_both(tmp_path)
    store.collection = recording = _Recording(store.collection)
    for where in ROUND_FILTERS:
        recording.calls.clear()
        assert [e.id for e in store.find(where)] == [e.id for e in reference.find(where)], where
        assert store.find(where, limit=2) == reference.find(where, limit=2), where
        assert store.count(where) == reference.count(where), where
        for text in ("What is 4 + 2? Show your steps.", "7 plus 1 is 8"):
            got = [(h.example.id, round(h.score, 4)) for h in store.search(text, k=3, where=where)]
            want = [
                (h.example.id, round(h.score, 4)) for h in reference.search(text, k=3, where=where)
            ]
            assert got == want, where
        narrow, _ = narrowing(where)
        asked = {str(call[1]) for call in recording.calls}
        if narrow is not None:  # Chroma is only asked for the round's (or task's) records
            assert asked == {str(to_chroma_where(narrow))}, where
        else:  # find has nothing to narrow by; search looks among the 16 * k nearest first
            assert asked == {str(to_chroma_where(where)), "None"}, where
            assert ("query", None, 48) in recording.calls


def test_a_search_filter_too_rare_for_the_nearest_records_falls_back_to_chroma(
    tmp_path, monkeypatch
):
    examples = _rounds()
    store = ChromaStore.persistent(tmp_path, "rounds", HashEmbeddings())
    store.add(examples)
    store.collection = recording = _Recording(store.collection)
    monkeypatch.setattr(chroma, "MAX_FETCH", 100)
    rare = {"kind": "attempt", "passed": False, "split": "heldout"}  # t9's four attempts
    hits = store.search("What is 1 + 1? Show your steps.", k=4, where=rare)
    assert [h.example.task_id for h in hits] == ["t9"] * 4
    assert [call[2] for call in recording.calls] == [64, 4]  # 64 nearest, then Chroma's filter
    assert recording.calls[-1][1] == to_chroma_where(rare)


def test_find_reads_large_answers_a_batch_at_a_time(tmp_path):
    store, reference = _rounds_in_both(tmp_path)
    store.batch_size = 7  # as if Chroma took 7 records per get
    for where in [None, {"kind": "attempt"}, *ROUND_FILTERS]:
        assert store.find(where) == reference.find(where), where
        assert store.find(where, limit=9) == reference.find(where, limit=9), where


@pytest.mark.slow
def test_find_returns_more_records_than_one_sql_statement_can_name(tmp_path):
    # One Chroma get of more than ~32k records' metadata fails ("too many SQL variables").
    store = ChromaStore.persistent(tmp_path, "many", HashEmbeddings(dim=8))
    n = 34_000
    store.add(Example(kind="attempt", prompt=f"task {i}", round=i // 1000) for i in range(n))
    assert len(store.find()) == len(store.find({"kind": "attempt"})) == n
    assert [e.prompt for e in store.find({"round": {"$gte": 33}})] == [
        f"task {i}" for i in range(33_000, n)
    ]

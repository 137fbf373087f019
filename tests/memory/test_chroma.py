"""Chroma-only behaviour: reopening after a restart, embedding registration, encoding, batching."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import chromadb
import pytest

from selfimprove.config import StoreConfig
from selfimprove.memory import ChromaStore, HashEmbeddings, InMemoryStore, open_store
from selfimprove.memory.chroma import decode_metadata, encode_metadata, to_chroma_where
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

"""The embedding functions: MiniLM on onnxruntime (real model, offline) and the hashing fallback."""

from __future__ import annotations

import numpy as np
import pytest
from chromadb.utils.embedding_functions import known_embedding_functions

from selfimprove.memory import HashEmbeddings, MiniLMEmbeddings, make_embeddings
from selfimprove.memory.embeddings import embed_texts

TEXTS = [
    "What is 17 + 25?",
    "Add the numbers 17 and 25.",
    "Reverse the string 'hello'.",
    "def add(a, b):\n    return a + b",
    "",
    "A much longer text about sorting lists of integers in ascending order, " * 3,
]


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_minilm_vectors_are_384_dim_and_unit_length(minilm):
    vectors = minilm.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_minilm_similar_beats_dissimilar(minilm):
    add, add_paraphrase, reverse = minilm.embed(TEXTS[:3])
    assert _cos(add, add_paraphrase) > _cos(add, reverse) + 0.2


def test_minilm_batching_matches_one_by_one(minilm):
    batched = minilm.embed(TEXTS)
    single = np.stack([minilm.embed([text])[0] for text in TEXTS])
    np.testing.assert_allclose(batched, single, atol=1e-4)
    small_batches = MiniLMEmbeddings(batch_size=2).embed(TEXTS)
    np.testing.assert_allclose(small_batches, single, atol=1e-4)


def test_minilm_truncates_long_texts(minilm):
    long = "numbers " * 2000  # far past the model's 512 positions
    vector = minilm.embed([long])
    assert vector.shape == (1, 384) and np.isfinite(vector).all()
    np.testing.assert_allclose(vector, minilm.embed(["numbers " * 300]), atol=1e-4)


def test_minilm_loads_lazily():
    embeddings = MiniLMEmbeddings(threads=1)
    assert embeddings._session is None  # constructing it is cheap
    assert embeddings.embed([]).shape == (0, 384)
    assert embeddings._session is None


def test_minilm_is_a_registered_chroma_embedding_function(minilm):
    vectors = minilm(["one", "two"])  # chromadb's protocol: a list of vectors
    assert len(vectors) == 2 and len(vectors[0]) == 384
    assert known_embedding_functions[MiniLMEmbeddings.name()] is MiniLMEmbeddings
    rebuilt = MiniLMEmbeddings.build_from_config(minilm.get_config())
    assert rebuilt.get_config() == minilm.get_config()
    assert minilm.default_space() == "cosine" and not minilm.is_legacy()
    with pytest.raises(ValueError, match="model"):
        minilm.validate_config_update(minilm.get_config(), {"model_path": "/other.onnx"})


def test_minilm_bad_options_are_refused():
    with pytest.raises(ValueError, match="batch_size=0"):
        MiniLMEmbeddings(batch_size=0)


def test_hash_embeddings_are_deterministic_unit_and_sensible(hashing):
    vectors = hashing.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors, HashEmbeddings().embed(TEXTS))
    near, copy, far = hashing.embed(["What is 17 + 25?", "what is 17 + 25 ?", "Paris, France"])
    assert _cos(near, copy) > 0.8 > 0.2 > _cos(near, far)


def test_hash_embeddings_are_registered(hashing):
    assert known_embedding_functions[HashEmbeddings.name()] is HashEmbeddings
    assert (
        HashEmbeddings.build_from_config(hashing.get_config()).get_config() == hashing.get_config()
    )
    assert not hashing.is_legacy()


def test_make_embeddings():
    assert isinstance(make_embeddings("hash"), HashEmbeddings)
    assert isinstance(make_embeddings("minilm", threads=1), MiniLMEmbeddings)
    with pytest.raises(ValueError, match="'bert'"):
        make_embeddings("bert")


def test_embed_texts_accepts_any_chroma_embedding_function():
    class Plain:
        def __call__(self, input):
            return [[3.0, 4.0] for _ in input]

    np.testing.assert_allclose(embed_texts(Plain(), ["a", "b"]), [[0.6, 0.8], [0.6, 0.8]])


def test_embed_texts_embeds_each_distinct_text_once_and_keeps_the_order():
    seen: list[list[str]] = []

    class Counting:
        def __call__(self, input):
            seen.append(list(input))
            return [[float(len(text)), 1.0] for text in input]

    texts = ["abc", "a", "abc", "abcd", "a", "abc"]
    vectors = embed_texts(Counting(), texts)
    assert seen == [["abc", "a", "abcd"]]
    expected = embed_texts(Counting(), ["abc", "a", "abcd"])
    np.testing.assert_array_equal(vectors, expected[[0, 1, 0, 2, 1, 0]])
    minilm = MiniLMEmbeddings()
    np.testing.assert_allclose(
        embed_texts(minilm, ["x y", "z", "x y"]), minilm.embed(["x y", "z", "x y"]), atol=1e-5
    )

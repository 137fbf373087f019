"""Exact and near-duplicate detection used for curation."""

from __future__ import annotations

import numpy as np
import pytest

from selfimprove.memory import cluster_near_duplicates, drop_duplicates, exact_duplicates, text_key
from selfimprove.types import Example


def _ex(prompt: str, completion: str = "", **kw) -> Example:
    return Example(kind="positive", prompt=prompt, completion=completion, **kw)


def test_exact_duplicates_ignore_case_whitespace_and_lineage():
    examples = [
        _ex("What is 2 + 2?", "4"),
        _ex("what is  2 + 2?\n", "4 ", round=3, agent="teacher"),
        _ex("What is 2 + 3?", "5"),
        _ex("WHAT IS 2 + 2?", "4", rejected="5"),  # a different rejected answer is different text
    ]
    assert text_key(examples[0]) == text_key(examples[1]) != text_key(examples[3])
    assert exact_duplicates(examples) == [[0, 1]]


def test_leader_clusters_do_not_chain():
    # Unit vectors at 0, 10 and 20 degrees: neighbours are close (cos 10° ≈ 0.985),
    # the ends are not (cos 20° ≈ 0.94).
    angles = np.radians([0.0, 10.0, 20.0, 90.0])
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    examples = [_ex(f"e{i}") for i in range(4)]
    assert cluster_near_duplicates(examples, vectors, threshold=0.95) == [[0, 1], [2], [3]]
    assert cluster_near_duplicates(examples, vectors, threshold=0.95, linkage="single") == [
        [0, 1, 2],
        [3],
    ]


def test_clusters_from_an_embedding_function(minilm):
    examples = [
        _ex("Write a function that returns the sum of two integers a and b.", "return a + b"),
        _ex("What is the capital of France?", "Paris"),
        _ex("Write a function that returns the sum of two integers a and b.", "return a+b"),
    ]
    assert cluster_near_duplicates(examples, minilm) == [[0, 2], [1]]
    assert drop_duplicates(examples, embeddings=minilm) == examples[:2]


def test_drop_duplicates_keeps_the_first_of_each_group(hashing):
    examples = [_ex("a b c", "1"), _ex("A  b c", "1"), _ex("x y z", "2")]
    assert drop_duplicates(examples) == [examples[0], examples[2]]
    assert drop_duplicates(examples, embeddings=hashing, threshold=0.99) == [
        examples[0],
        examples[2],
    ]
    assert drop_duplicates([]) == [] and cluster_near_duplicates([], hashing) == []


def test_bad_arguments_are_refused(hashing):
    examples = [_ex("a"), _ex("b")]
    with pytest.raises(ValueError, match="3 vectors for 2 examples"):
        cluster_near_duplicates(examples, np.ones((3, 4)))
    with pytest.raises(ValueError, match="threshold 1.5"):
        cluster_near_duplicates(examples, hashing, threshold=1.5)
    with pytest.raises(ValueError, match="'complete'"):
        cluster_near_duplicates(examples, hashing, linkage="complete")

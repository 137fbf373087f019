"""The reference ``ExampleStore``: a dict of examples and a numpy matrix of unit vectors.

Exact cosine search (one matrix-vector product) and the filter semantics of
``base.matches``. Nothing persists: use it in tests and short scripts, or to
check what the Chroma backend should answer.

    from selfimprove.memory import InMemoryStore, HashEmbeddings
    store = InMemoryStore(HashEmbeddings())
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from selfimprove.memory.base import (
    ScoredExample,
    Where,
    as_id_list,
    check_k,
    check_limit,
    matches,
    near_duplicates_by_search,
    unique_by_id,
    validate_where,
)
from selfimprove.memory.embeddings import embed_texts
from selfimprove.types import Example


class InMemoryStore:
    """An ``ExampleStore`` held in process memory.

    Args:
        embeddings: Any chromadb-style embedding function, e.g. ``HashEmbeddings()``.
    """

    def __init__(self, embeddings: Any) -> None:
        self.embeddings = embeddings
        self._examples: dict[str, Example] = {}
        self._vectors: dict[str, np.ndarray] = {}
        self._matrix: np.ndarray | None = None  # rows in _examples order; rebuilt after changes

    def __repr__(self) -> str:
        return f"InMemoryStore({len(self._examples)} examples)"

    def add(self, examples: Iterable[Example]) -> int:
        new = [e for i, e in unique_by_id(examples).items() if i not in self._examples]
        if not new:
            return 0
        vectors = embed_texts(self.embeddings, [e.document for e in new])
        for example, vector in zip(new, vectors, strict=True):
            self._examples[example.id] = example
            self._vectors[example.id] = vector
        self._matrix = None
        return len(new)

    def get(self, ids: Iterable[str]) -> list[Example]:
        wanted = dict.fromkeys(as_id_list(ids))
        return [self._examples[i] for i in wanted if i in self._examples]

    def find(self, where: Where | None = None, *, limit: int | None = None) -> list[Example]:
        validate_where(where)
        check_limit(limit)
        out = []
        for example in self._examples.values():
            if limit is not None and len(out) >= limit:
                break
            if matches(example, where):
                out.append(example)
        return out

    def count(self, where: Where | None = None) -> int:
        validate_where(where)
        if not where:
            return len(self._examples)
        return sum(1 for e in self._examples.values() if matches(e, where))

    def search(self, text: str, *, k: int = 5, where: Where | None = None) -> list[ScoredExample]:
        check_k(k)
        validate_where(where)
        if not self._examples:
            return []
        if self._matrix is None:
            self._matrix = np.stack(list(self._vectors.values()))
        query = embed_texts(self.embeddings, [text])[0]
        scores = self._matrix @ query
        examples = list(self._examples.values())
        allowed = np.array([matches(e, where) for e in examples]) if where else None
        if allowed is not None:
            scores = np.where(allowed, scores, -np.inf)
        top = np.argsort(-scores, kind="stable")[:k]
        return [
            ScoredExample(examples[i], float(min(1.0, scores[i])))
            for i in top
            if np.isfinite(scores[i])
        ]

    def delete(self, ids: Iterable[str]) -> int:
        removed = 0
        for i in dict.fromkeys(as_id_list(ids)):
            if self._examples.pop(i, None) is not None:
                del self._vectors[i]
                removed += 1
        if removed:
            self._matrix = None
        return removed

    def near_duplicates(
        self, example_or_text: Example | str, *, threshold: float = 0.95, where: Where | None = None
    ) -> list[ScoredExample]:
        return near_duplicates_by_search(self, example_or_text, threshold=threshold, where=where)

"""Duplicate detection for curation: exact (normalised text hash) and near (embedding cosine).

Training on twenty copies of one easy example teaches the model that example;
before a round's data goes to the trainer, drop exact copies and keep one
member of each cluster of near-copies:

    kept = drop_duplicates(examples, embeddings=MiniLMEmbeddings(), threshold=0.95)

Order matters everywhere: the first example of a group is its representative,
so sort by preference (e.g. shortest correct answer first) before calling.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from selfimprove.memory.embeddings import embed_texts
from selfimprove.types import Example

Linkage = Literal["leader", "single"]
_BLOCK = 1024  # rows of the similarity matrix computed at once: bounds memory at ~4 MB per 1k items


def normalize_text(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed: what "the same text" means for exact dedup."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def text_key(example: Example) -> str:
    """A hash of the normalised prompt, completion and rejected text (lineage ignored).

    An example trained on a conversation (``metadata["messages"]``) differs by it.
    """
    parts = [example.prompt, example.completion, example.rejected or ""]
    if example.metadata.get("messages"):
        parts.append(str(example.metadata["messages"]))
    blob = "\x1f".join(normalize_text(p) for p in parts)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


def exact_duplicates(examples: Sequence[Example]) -> list[list[int]]:
    """Groups of indices of examples with the same ``text_key``, only groups of two or more."""
    groups: dict[str, list[int]] = {}
    for index, example in enumerate(examples):
        groups.setdefault(text_key(example), []).append(index)
    return [group for group in groups.values() if len(group) > 1]


def _vectors(examples: Sequence[Example], embeddings: Any) -> np.ndarray:
    if isinstance(embeddings, np.ndarray):
        if embeddings.shape[0] != len(examples):
            raise ValueError(
                f"got {embeddings.shape[0]} vectors for {len(examples)} examples: pass one row each"
            )
        norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
        return (embeddings / np.maximum(norms, 1e-12)).astype(np.float32)
    return embed_texts(embeddings, [e.document for e in examples])


def _leader(vectors: np.ndarray, threshold: float) -> list[list[int]]:
    # Each item joins the first earlier leader it is close to, else leads a new
    # cluster: every member is within threshold of its leader (no chaining).
    leader_rows = np.empty_like(vectors)  # preallocated: no copy of the leaders per item
    clusters: list[list[int]] = []
    for index, vector in enumerate(vectors):
        close = np.flatnonzero(leader_rows[: len(clusters)] @ vector >= threshold)
        if close.size:
            clusters[int(close[0])].append(index)
        else:
            leader_rows[len(clusters)] = vector
            clusters.append([index])
    return clusters


def _single(vectors: np.ndarray, threshold: float) -> list[list[int]]:
    # Union-find over every pair above threshold: transitive, so a chain of
    # small edits ends up in one cluster even when its ends are far apart.
    parent = list(range(len(vectors)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for start in range(0, len(vectors), _BLOCK):
        sims = vectors[start : start + _BLOCK] @ vectors.T
        rows, cols = np.nonzero(sims >= threshold)
        for row, col in zip(rows + start, cols, strict=True):
            if col > row:
                a, b = root(int(row)), root(int(col))
                if a != b:
                    parent[max(a, b)] = min(a, b)  # the earliest index stays the root
    clusters: dict[int, list[int]] = {}
    for index in range(len(vectors)):
        clusters.setdefault(root(index), []).append(index)
    return list(clusters.values())


def cluster_near_duplicates(
    examples: Sequence[Example],
    embeddings: Any,
    *,
    threshold: float = 0.95,
    linkage: Linkage = "leader",
) -> list[list[int]]:
    """Cluster examples whose documents have cosine similarity >= ``threshold``.

    Args:
        examples: The examples, in order of preference.
        embeddings: An embedding function (embedded in one batch), or an array
            with one vector per example.
        threshold: Cosine similarity at or above which two examples are near-copies.
        linkage: ``"leader"`` (greedy: each member is close to the cluster's
            first example) or ``"single"`` (union-find: connected components).

    Returns:
        Every index exactly once, in clusters (singletons included), each
        cluster sorted and the clusters ordered by their first index.
    """
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold {threshold!r} is a cosine similarity: use a value in [-1, 1]")
    if linkage not in ("leader", "single"):
        raise ValueError(f"linkage must be 'leader' or 'single', got {linkage!r}")
    if not examples:
        return []
    vectors = _vectors(examples, embeddings)
    clusters = _leader(vectors, threshold) if linkage == "leader" else _single(vectors, threshold)
    return sorted((sorted(c) for c in clusters), key=lambda c: c[0])


def drop_duplicates(
    examples: Sequence[Example],
    *,
    embeddings: Any = None,
    threshold: float = 0.95,
    linkage: Linkage = "leader",
) -> list[Example]:
    """Keep the first of each exact-duplicate group, then (given ``embeddings``) of each near cluster.

    Args:
        examples: The examples, in order of preference.
        embeddings: An embedding function for near-duplicate removal; None
            removes exact duplicates only.
        threshold: See ``cluster_near_duplicates``.
        linkage: See ``cluster_near_duplicates``.
    """
    seen: set[str] = set()
    kept: list[Example] = []
    for example in examples:
        key = text_key(example)
        if key not in seen:
            seen.add(key)
            kept.append(example)
    if embeddings is None or len(kept) < 2:
        return kept
    clusters = cluster_near_duplicates(kept, embeddings, threshold=threshold, linkage=linkage)
    return [kept[cluster[0]] for cluster in clusters]

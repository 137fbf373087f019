"""The example store: every attempt, positive, negative, DPO pair and workflow, with lineage.

``open_store(config.store)`` returns an ``ExampleStore`` (Chroma on disk by
default, a Chroma server, or in memory); ``export`` turns stored examples into
TRL datasets and ``dedup`` curates them.

    from selfimprove.config import StoreConfig
    from selfimprove.memory import open_store
    store = open_store(StoreConfig(backend="memory", embedding="hash"))
    store.add([example]); store.search("adding two numbers", k=3)
"""

from __future__ import annotations

import uuid

from selfimprove.config import StoreConfig
from selfimprove.memory.base import ExampleStore, ScoredExample, Where, matches, validate_where
from selfimprove.memory.chroma import ChromaStore
from selfimprove.memory.dedup import (
    cluster_near_duplicates,
    drop_duplicates,
    exact_duplicates,
    text_key,
)
from selfimprove.memory.embeddings import HashEmbeddings, MiniLMEmbeddings, make_embeddings
from selfimprove.memory.export import dpo_dataset, sft_dataset
from selfimprove.memory.inmemory import InMemoryStore
from selfimprove.memory.workflows import WorkflowMemory

__all__ = [
    "ChromaStore",
    "ExampleStore",
    "HashEmbeddings",
    "InMemoryStore",
    "MiniLMEmbeddings",
    "ScoredExample",
    "Where",
    "WorkflowMemory",
    "cluster_near_duplicates",
    "dpo_dataset",
    "drop_duplicates",
    "exact_duplicates",
    "make_embeddings",
    "matches",
    "open_store",
    "open_workflows",
    "sft_dataset",
    "text_key",
    "validate_where",
]


def open_store(config: StoreConfig) -> ExampleStore:
    """Open the store a ``StoreConfig`` describes.

    ``backend="chroma"`` opens (or creates) a persistent database at
    ``config.path``; ``"chroma-http"`` connects to a server started with
    ``chroma run --path DIR --host HOST --port PORT``; ``"memory"`` keeps
    everything in this process. Nothing is shared between calls: each returns
    a new store object.
    """
    embeddings = make_embeddings(config.embedding)
    if config.backend == "memory":
        return InMemoryStore(embeddings)
    if config.backend == "chroma":
        return ChromaStore.persistent(config.path, config.collection, embeddings)
    if config.backend == "chroma-http":
        return ChromaStore.http(config.host, config.port, config.collection, embeddings)
    raise ValueError(
        f"unknown store backend {config.backend!r}; use 'chroma', 'chroma-http' or 'memory'"
    )


def open_workflows(store: ExampleStore, collection: str = "workflows") -> WorkflowMemory:
    """The workflow memory beside ``store``: a separate collection in the same Chroma database.

    A Chroma store shares its client (on disk or a server) and embedding function;
    an in-memory store gets a private in-process Chroma collection, so two runs in
    one process never see each other's workflows.
    """
    if isinstance(store, ChromaStore):
        return WorkflowMemory(store.client, collection, store.embeddings)
    import chromadb

    private = f"{collection}-{uuid.uuid4().hex[:12]}"
    return WorkflowMemory(chromadb.EphemeralClient(), private, getattr(store, "embeddings", None))

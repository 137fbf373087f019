"""The Chroma ``ExampleStore``: an embedded persistent database, or a Chroma server over HTTP.

    store = ChromaStore.persistent("runs/store", embeddings=MiniLMEmbeddings())
    store = ChromaStore.http("127.0.0.1", 8000)   # a server from `chroma run --path DIR`

The store embeds documents itself, in batches, and hands Chroma precomputed
vectors; the collection still records its embedding function (registered in
``embeddings.py``) so that plain chromadb code can ``query_texts`` it after a
restart. The collection uses cosine space, and ``score = 1 - distance``.

Encoding (Chroma metadata holds only flat str/int/float/bool values):

- ``document``: ``Example.document`` (the embedded text);
- ``"example"``: the whole example as JSON, the one source read back, so every
  field round-trips exactly (None, bools, floats, unicode);
- lineage fields under their own names (``kind``, ``round``, ``agent``,
  ``model``; ``task_id``, ``parent_id``, ``passed``, ``error_type`` when not
  None) and ``"null.<field>": True`` when a nullable field is None, so that
  ``{"parent_id": None}`` can be asked of Chroma;
- each ``Example.metadata`` item under ``"metadata.<key>"``.

Those flat keys exist only for filtering; ``to_chroma_where`` translates the
``base.Where`` dialect onto them.

Filters cost what their broadest clause matches: Chroma answers each clause of
a filter with its own index look-up and intersects the results, and a filtered
query first gathers every record the filter allows. So ``{"kind": "positive"}``,
a ``$ne`` or ``round < r`` costs as much as the part of the whole store it
matches, even beside a clause that leaves a few hundred records, and a round's
work would grow with every earlier round. Two rules keep it to the records
asked for (``bench/bench_scaling.py`` measures it):

- ``find``/``count``: when a filter holds equalities (or ``$in`` lists) on
  ``round``, ``task_id`` or ``parent_id`` (a round, a few tasks, a parent:
  small slices of a store), only those go to Chroma and the rest is checked
  here with ``base.matches``, the reference semantics (``narrowing``);
- ``search`` with a filter: the nearest records are fetched unfiltered (the
  slice selected by such equalities, if any), ``16 * k`` at first and widening,
  and filtered here; a filter too rare for that falls back to Chroma's own
  filtered query. The nearest records a filter excludes are still read: a
  task's own earlier examples, closest to its prompt and excluded by
  ``{"task_id": {"$ne": ...}}``, make that search grow with the task's history
  (``bench/bench_scaling.py``'s "retrieve worked").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

# chromadb reads its telemetry setting from the environment: importing this module has
# already run selfimprove/__init__.py, which sets ANONYMIZED_TELEMETRY=False and the
# offline variables before chromadb loads.
import chromadb
from chromadb.errors import NotFoundError

from selfimprove.memory.base import (
    LINEAGE_FIELDS,
    ScoredExample,
    Where,
    as_id_list,
    check_k,
    check_limit,
    matches,
    near_duplicates_by_search,
    resolve_key,
    unique_by_id,
    validate_where,
)
from selfimprove.memory.embeddings import MiniLMEmbeddings, embed_texts
from selfimprove.types import Example

EXAMPLE_KEY = "example"
NULL_PREFIX = "null."
META_PREFIX = "metadata."
SCHEMA = {"selfimprove.schema": 1}
_INT64 = (-(2**63), 2**63 - 1)
SELECTIVE_FIELDS = ("round", "task_id", "parent_id")  # an equality on one picks a small slice
OVERFETCH = 16  # search: nearest records fetched per result wanted, before filtering here
MAX_FETCH = 4096  # search: beyond this many, Chroma filters (the filter is rare)


def encode_metadata(example: Example) -> dict[str, Any]:
    """Flat Chroma metadata for ``example`` (see the module docstring)."""
    out: dict[str, Any] = {EXAMPLE_KEY: example.model_dump_json()}
    for name in LINEAGE_FIELDS:
        value = getattr(example, name)
        if value is None:
            out[NULL_PREFIX + name] = True
        else:
            out[name] = value
    for key, value in example.metadata.items():
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and not (_INT64[0] <= value <= _INT64[1])
        ):
            raise ValueError(
                f"example {example.id!r}: metadata {key!r}={value!r} does not fit Chroma's "
                "64-bit integers; store it as a string"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(
                f"example {example.id!r}: metadata {key!r}={value!r} is not finite; "
                "Chroma cannot filter on it, store it as a string"
            )
        out[META_PREFIX + key] = value
    return out


def decode_metadata(metadata: Mapping[str, Any]) -> Example:
    """The ``Example`` stored in a record's metadata."""
    try:
        return Example.model_validate_json(metadata[EXAMPLE_KEY])
    except KeyError:
        raise ValueError(
            f"Chroma record without an {EXAMPLE_KEY!r} key (keys {sorted(metadata)!r}): the "
            "collection holds records not written by selfimprove; use another collection"
        ) from None


def _join(op: str, clauses: list[dict[str, Any]]) -> dict[str, Any] | None:
    # Chroma wants $and/$or lists of two or more; None means "match everything".
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {op: clauses}


def _translate(key: str, op: str, operand: Any) -> dict[str, Any] | None:
    is_lineage, name = resolve_key(key)
    field = name if is_lineage else META_PREFIX + name
    null = NULL_PREFIX + name
    if op in ("$eq", "$ne") and operand is None:
        return {null: True} if op == "$eq" else {null: {"$ne": True}}
    if op in ("$in", "$nin"):
        values = [v for v in operand if v is not None]
        with_null = len(values) < len(operand)
        if op == "$in":
            parts = ([{field: {"$in": values}}] if values else []) + (
                [{null: True}] if with_null else []
            )
            return _join("$or", parts)
        parts = ([{field: {"$nin": values}}] if values else []) + (
            [{null: {"$ne": True}}] if with_null else []
        )
        return _join("$and", parts)
    # A missing key satisfies $ne/$nin in Chroma, as None does in base.matches.
    return {field: {op: operand}}


def to_chroma_where(where: Where | None) -> dict[str, Any] | None:
    """Translate a ``base.Where`` filter to Chroma's dialect over the encoded metadata.

    Returns None for a filter that matches everything.
    """
    if not where:
        return None
    clauses: list[dict[str, Any]] = []
    for key, value in where.items():
        if key in ("$and", "$or"):
            subs = [to_chroma_where(clause) for clause in value]
            if key == "$or" and any(sub is None for sub in subs):
                continue  # one branch matches everything, so the whole $or does
            joined = _join(key, [sub for sub in subs if sub is not None])
        else:
            ops = value if isinstance(value, Mapping) else {"$eq": value}
            joined = _join("$and", [c for op, x in ops.items() if (c := _translate(key, op, x))])
        if joined is not None:
            clauses.append(joined)
    return _join("$and", clauses)


def _clauses(where: Where) -> list[tuple[str, Any]]:
    """The top-level conjuncts of ``where`` as ``(key, value)``, nested ``$and`` s flattened."""
    out: list[tuple[str, Any]] = []
    for key, value in where.items():
        if key == "$and":
            for clause in value:
                out += _clauses(clause)
        else:
            out.append((key, value))
    return out


def _selective(key: str, value: Any) -> bool:
    """An equality (or ``$in``) on a ``SELECTIVE_FIELDS`` field, None not among the values."""
    if key not in SELECTIVE_FIELDS:
        return False
    if not isinstance(value, Mapping):
        return value is not None
    if list(value) == ["$in"]:
        return None not in value["$in"]
    return list(value) == ["$eq"] and value["$eq"] is not None


def narrowing(where: Where | None) -> tuple[Where | None, bool]:
    """``(the equalities on SELECTIVE_FIELDS among where's conjuncts, whether others remain)``.

    ``(None, True)``: nothing narrows the filter; ``(part, False)``: ``part`` is the
    whole filter (see the module docstring).
    """
    if not where:
        return None, False
    clauses = _clauses(where)
    chosen = [{key: value} for key, value in clauses if _selective(key, value)]
    narrow = None if not chosen else chosen[0] if len(chosen) == 1 else {"$and": chosen}
    return narrow, len(chosen) < len(clauses)


def open_collection(client: Any, name: str, embeddings: Any) -> tuple[Any, Any]:
    """``(collection, embeddings)``: the cosine-space collection ``name``, created if missing.

    A new collection records ``embeddings`` (MiniLM when None); an existing one must be
    cosine and have been built with the same embedding, else ``ValueError`` says why.
    """
    try:
        collection = client.get_collection(name)
    except NotFoundError:
        embeddings = embeddings if embeddings is not None else MiniLMEmbeddings()
        collection = client.get_or_create_collection(
            name,
            embedding_function=embeddings,
            configuration={"hnsw": {"space": "cosine"}},
            metadata=SCHEMA,
        )
        return collection, embeddings
    config = collection.configuration or {}
    space = (config.get("hnsw") or config.get("spann") or {}).get("space")
    if space != "cosine":
        raise ValueError(
            f"collection {name!r} uses {space!r} space, not 'cosine': it was not created by "
            "selfimprove; choose another collection name"
        )
    persisted = config.get("embedding_function")
    if embeddings is not None and persisted is not None and persisted.name() != embeddings.name():
        raise ValueError(
            f"collection {name!r} was built with embedding {persisted.name()!r}, not "
            f"{embeddings.name()!r}; its vectors would not be comparable: open it with the same "
            "embedding (StoreConfig.embedding) or use a new collection"
        )
    embeddings = embeddings if embeddings is not None else persisted
    if embeddings is None:
        raise ValueError(f"collection {name!r} records no embedding function: pass embeddings=")
    return collection, embeddings


class ChromaCollection:
    """One cosine-space Chroma collection and its embedding function; opened three ways.

    Args:
        client: A chromadb client (``PersistentClient``, ``HttpClient``, ...).
        collection: Collection name (3-63 characters); None: the class's default.
        embeddings: The embedding function. None: the one the existing
            collection records, or ``MiniLMEmbeddings()`` for a new one.
    """

    default_collection: ClassVar[str] = "examples"

    def __init__(self, client: Any, collection: str | None = None, embeddings: Any = None) -> None:
        self.client = client
        name = collection or self.default_collection
        self.collection, self.embeddings = open_collection(client, name, embeddings)

    @classmethod
    def persistent(
        cls, path: str | Path, collection: str | None = None, embeddings: Any = None
    ) -> Self:
        """The collection in the embedded database at ``path`` (created if missing)."""
        Path(path).mkdir(parents=True, exist_ok=True)
        return cls(chromadb.PersistentClient(path=str(path)), collection, embeddings)

    @classmethod
    def http(
        cls, host: str, port: int, collection: str | None = None, embeddings: Any = None
    ) -> Self:
        """The collection on the Chroma server at ``host:port``."""
        return cls(chromadb.HttpClient(host=host, port=port), collection, embeddings)


class ChromaStore(ChromaCollection):
    """An ``ExampleStore`` over one Chroma collection (default ``"examples"``).

    Open it with ``ChromaStore(client, collection, embeddings)``,
    ``ChromaStore.persistent(path)`` or ``ChromaStore.http(host, port)``.
    """

    def __init__(self, client: Any, collection: str | None = None, embeddings: Any = None) -> None:
        super().__init__(client, collection, embeddings)
        self.batch_size = client.get_max_batch_size()

    def __repr__(self) -> str:
        return f"ChromaStore(collection={self.collection.name!r})"

    def _chunks(self, items: list[Any]) -> Iterable[list[Any]]:
        for start in range(0, len(items), self.batch_size):
            yield items[start : start + self.batch_size]

    def _existing(self, ids: list[str]) -> set[str]:
        found: set[str] = set()
        for chunk in self._chunks(ids):
            found.update(self.collection.get(ids=chunk, include=[])["ids"])
        return found

    def add(self, examples: Iterable[Example]) -> int:
        """Embed and store the examples whose ids are not stored yet; return how many.

        Ids already stored are looked up per batch and skipped before
        embedding, so re-adding costs no embedding. Two writers adding the same
        new id at the same moment may both count it (Chroma keeps the first).
        """
        unique = list(unique_by_id(examples).items())  # ids are hashes: computed once here
        added = 0
        for chunk in self._chunks(unique):
            existing = self._existing([i for i, _ in chunk])
            new = [(i, e) for i, e in chunk if i not in existing]
            if not new:
                continue
            metadatas = [encode_metadata(e) for _, e in new]  # before embedding: fail fast
            documents = [e.document for _, e in new]
            self.collection.add(
                ids=[i for i, _ in new],
                embeddings=embed_texts(self.embeddings, documents),
                documents=documents,
                metadatas=metadatas,
            )
            added += len(new)
        return added

    def get(self, ids: Iterable[str]) -> list[Example]:
        wanted = list(dict.fromkeys(as_id_list(ids)))
        by_id: dict[str, Example] = {}
        for chunk in self._chunks(wanted):
            got = self.collection.get(ids=chunk, include=["metadatas"])
            for i, metadata in zip(got["ids"], got["metadatas"], strict=True):
                by_id[i] = decode_metadata(metadata)
        return [by_id[i] for i in wanted if i in by_id]

    def find(self, where: Where | None = None, *, limit: int | None = None) -> list[Example]:
        validate_where(where)
        check_limit(limit)
        if limit == 0:
            return []
        narrow, rest = narrowing(where)
        if narrow is None or not rest:  # nothing to narrow by, or nothing else
            return [decode_metadata(m) for m in self._metadatas(where, limit)]
        found = (decode_metadata(m) for m in self._metadatas(narrow, None))
        return [e for e in found if matches(e, where)][:limit]

    def _metadatas(self, where: Where | None, limit: int | None) -> list[Mapping[str, Any]]:
        """The metadata of the records ``where`` allows, in insertion order, at most ``limit``.

        Read a batch at a time: Chroma reads the metadata of one ``get`` in one SQL
        statement, which fails with "too many SQL variables" past about 32k records.
        """
        out: list[Mapping[str, Any]] = []
        while limit is None or len(out) < limit:
            size = self.batch_size if limit is None else min(self.batch_size, limit - len(out))
            got = self.collection.get(
                where=to_chroma_where(where), limit=size, offset=len(out), include=["metadatas"]
            )
            out += got["metadatas"]
            if len(got["metadatas"]) < size:
                break
        return out

    def count(self, where: Where | None = None) -> int:
        validate_where(where)
        narrow, rest = narrowing(where)
        if narrow is not None and rest:
            return len(self.find(where))
        chroma_where = to_chroma_where(where)
        if chroma_where is None:
            return self.collection.count()
        return len(self.collection.get(where=chroma_where, include=[])["ids"])

    def search(self, text: str, *, k: int = 5, where: Where | None = None) -> list[ScoredExample]:
        check_k(k)
        validate_where(where)
        query = embed_texts(self.embeddings, [text])
        narrow, rest = narrowing(where)
        if not rest:  # no filter, or only equalities that Chroma answers from a small slice
            return self._query(query, k, where)
        n = OVERFETCH * k
        while n <= MAX_FETCH:
            hits = self._query(query, n, narrow)
            kept = [h for h in hits if matches(h.example, where)]
            if len(kept) >= k or len(hits) < n:  # enough, or every candidate seen
                return kept[:k]
            n *= 8
        return self._query(query, k, where)

    def _query(self, query: Any, n: int, where: Where | None) -> list[ScoredExample]:
        """The ``n`` records nearest to the ``query`` vector among those ``where`` allows."""
        got = self.collection.query(
            query_embeddings=query,
            n_results=n,
            where=to_chroma_where(where),
            include=["metadatas", "distances"],
        )
        return [
            # float32 distances can dip just below 0 for the query itself
            ScoredExample(decode_metadata(m), min(1.0, 1.0 - float(d)))
            for m, d in zip(got["metadatas"][0], got["distances"][0], strict=True)
        ]

    def delete(self, ids: Iterable[str]) -> int:
        existing = sorted(self._existing(list(dict.fromkeys(as_id_list(ids)))))
        for chunk in self._chunks(existing):
            self.collection.delete(ids=chunk)
        return len(existing)

    def near_duplicates(
        self, example_or_text: Example | str, *, threshold: float = 0.95, where: Where | None = None
    ) -> list[ScoredExample]:
        return near_duplicates_by_search(self, example_or_text, threshold=threshold, where=where)

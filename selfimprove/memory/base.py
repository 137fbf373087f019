"""The ``ExampleStore`` protocol, its result type and the shared ``Where`` filter semantics.

Every backend (``inmemory.InMemoryStore``, ``chroma.ChromaStore``) implements
the same seven methods and must pass ``tests/memory/test_conformance.py``.
``matches`` is the reference meaning of a filter; the Chroma backend
translates filters so that Chroma computes the same answer.

The filter dialect (``Where``) is a subset of Chroma's:

- ``{"field": value}`` is ``{"field": {"$eq": value}}``;
- operators ``$eq $ne $gt $gte $lt $lte $in $nin``; ``$gt``-style operators take
  numbers only, ``$in``/``$nin`` a non-empty list of values of one type;
- ``{"$and": [where, ...]}``, ``{"$or": [where, ...]}``; several keys in one
  mapping (or several operators on one field) are an implicit ``$and``;
- fields are the lineage fields ``kind task_id round agent model parent_id
  passed error_type``; any other key names an ``Example.metadata`` key, and
  ``"metadata.<key>"`` names one explicitly (for a key that shadows a lineage
  field);
- ``None`` matches a missing value and is only allowed on the nullable
  lineage fields (``task_id parent_id passed error_type``): ``{"parent_id":
  None}`` finds roots. A missing value (None, or an absent metadata key)
  satisfies ``$ne`` and ``$nin`` and nothing else;
- booleans never equal numbers (``{"passed": 1}`` matches nothing), while
  ``1`` equals ``1.0``, as in Chroma.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable

from selfimprove.types import Example

Where = Mapping[str, Any]
"""A filter over lineage fields and metadata keys; see the module docstring."""

LINEAGE_FIELDS = ("kind", "task_id", "round", "agent", "model", "parent_id", "passed", "error_type")
NULLABLE_FIELDS = ("task_id", "parent_id", "passed", "error_type")
METADATA_PREFIX = "metadata."
COMPARISONS = ("$gt", "$gte", "$lt", "$lte")
OPERATORS = ("$eq", "$ne", "$in", "$nin", *COMPARISONS)
_SCALARS = (str, int, float, bool)


class ScoredExample(NamedTuple):
    """A search hit: the example and its cosine similarity to the query (higher is closer)."""

    example: Example
    score: float


@runtime_checkable
class ExampleStore(Protocol):
    """Where examples live: idempotent batch add, filtered lookup and similarity search."""

    def add(self, examples: Iterable[Example]) -> int:
        """Store ``examples``; return how many were new (an id already stored is skipped)."""
        ...

    def get(self, ids: Iterable[str]) -> list[Example]:
        """The stored examples with these ids, in the order asked; unknown ids are skipped."""
        ...

    def find(self, where: Where | None = None, *, limit: int | None = None) -> list[Example]:
        """Examples matching ``where`` in insertion order, at most ``limit``."""
        ...

    def count(self, where: Where | None = None) -> int:
        """How many stored examples match ``where``."""
        ...

    def search(self, text: str, *, k: int = 5, where: Where | None = None) -> list[ScoredExample]:
        """The ``k`` examples most similar to ``text`` among those matching ``where``, best first."""
        ...

    def delete(self, ids: Iterable[str]) -> int:
        """Remove these ids; return how many were stored."""
        ...

    def near_duplicates(
        self, example_or_text: Example | str, *, threshold: float = 0.95, where: Where | None = None
    ) -> list[ScoredExample]:
        """Stored examples with cosine similarity >= ``threshold``, best first.

        Given an ``Example``, its ``document`` is the query and the example
        itself is left out of the result.
        """
        ...


def resolve_key(key: str) -> tuple[bool, str]:
    """Map a filter key to ``(is_lineage, name)``.

    Raises:
        ValueError: the key names an ``Example`` field that is not filterable.
    """
    if key.startswith(METADATA_PREFIX) and len(key) > len(METADATA_PREFIX):
        return False, key[len(METADATA_PREFIX) :]
    if key in LINEAGE_FIELDS:
        return True, key
    if key in Example.model_fields or key.startswith("$"):
        raise ValueError(
            f"cannot filter on {key!r}: filter on one of {list(LINEAGE_FIELDS)} or a metadata "
            f"key (write 'metadata.{key}' for a metadata key of that name); "
            "use search() for text"
        )
    return False, key


def _check_operand(key: str, op: str, operand: Any, nullable: bool) -> None:
    if op in COMPARISONS:
        if isinstance(operand, bool) or not isinstance(operand, (int, float)):
            raise ValueError(f"{key!r}: {op} needs a number, got {operand!r}")
        return
    values = operand if op in ("$in", "$nin") else [operand]
    if op in ("$in", "$nin") and (not isinstance(operand, list) or not operand):
        raise ValueError(f"{key!r}: {op} needs a non-empty list, got {operand!r}")
    if None in values and not nullable:
        raise ValueError(
            f"{key!r}: None can only be matched on the nullable lineage fields "
            f"{list(NULLABLE_FIELDS)}; metadata keys and other fields are never None"
        )
    scalars = [v for v in values if v is not None]
    for value in scalars:
        if not isinstance(value, _SCALARS):
            raise ValueError(f"{key!r}: {op} value {value!r} is not a str, int, float or bool")
    if len({type(v) for v in scalars}) > 1:
        raise ValueError(f"{key!r}: {op} values must all have one type, got {operand!r}")


def validate_where(where: Where | None) -> None:
    """Check a filter against the dialect; raise ``ValueError`` quoting the bad part."""
    if where is None:
        return
    if not isinstance(where, Mapping):
        raise ValueError(f"a where filter must be a mapping, got {where!r}")
    for key, value in where.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise ValueError(f"{key} needs a non-empty list of filters, got {value!r}")
            for clause in value:
                validate_where(clause)
            continue
        is_lineage, _ = resolve_key(key)
        nullable = is_lineage and key in NULLABLE_FIELDS
        ops = value if isinstance(value, Mapping) else {"$eq": value}
        if not ops:
            raise ValueError(f"{key!r}: empty operator mapping {value!r}")
        for op, operand in ops.items():
            if op not in OPERATORS:
                raise ValueError(f"{key!r}: unknown operator {op!r}; use one of {list(OPERATORS)}")
            _check_operand(key, op, operand, nullable)


def field_value(example: Example, key: str) -> Any:
    """The value a filter key sees on ``example``; None when missing."""
    is_lineage, name = resolve_key(key)
    if is_lineage:
        return getattr(example, name)
    return example.metadata.get(name)


def same_value(a: Any, b: Any) -> bool:
    """Equality as Chroma filters see it: bools only equal bools, ints equal floats."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def _apply(op: str, value: Any, operand: Any) -> bool:
    if op == "$eq":
        return (
            value is None if operand is None else value is not None and same_value(value, operand)
        )
    if op == "$ne":
        return not _apply("$eq", value, operand)
    if op == "$in":
        return any(_apply("$eq", value, item) for item in operand)
    if op == "$nin":
        return not _apply("$in", value, operand)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False  # comparisons only see numbers; strings, bools and missing never match
    return {
        "$gt": value > operand,
        "$gte": value >= operand,
        "$lt": value < operand,
        "$lte": value <= operand,
    }[op]


def matches(example: Example, where: Where | None) -> bool:
    """Whether ``example`` satisfies ``where`` (the reference semantics; validate first)."""
    if not where:
        return True
    for key, value in where.items():
        if key == "$and":
            ok = all(matches(example, clause) for clause in value)
        elif key == "$or":
            ok = any(matches(example, clause) for clause in value)
        else:
            ops = value if isinstance(value, Mapping) else {"$eq": value}
            actual = field_value(example, key)
            ok = all(_apply(op, actual, operand) for op, operand in ops.items())
        if not ok:
            return False
    return True


def query_of(example_or_text: Example | str) -> tuple[str, str | None]:
    """The query text and the id to leave out for ``near_duplicates``."""
    if isinstance(example_or_text, Example):
        return example_or_text.document, example_or_text.id
    if isinstance(example_or_text, str):
        return example_or_text, None
    raise TypeError(f"expected an Example or a str, got {type(example_or_text).__name__}")


def near_duplicates_by_search(
    store: ExampleStore,
    example_or_text: Example | str,
    *,
    threshold: float,
    where: Where | None,
) -> list[ScoredExample]:
    """``near_duplicates`` built on ``store.search``: widen ``k`` until a hit falls below threshold."""
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold {threshold!r} is a cosine similarity: use a value in [-1, 1]")
    text, own_id = query_of(example_or_text)
    k = 16
    while True:
        hits = store.search(text, k=k, where=where)
        if len(hits) < k or hits[-1].score < threshold:
            break
        k *= 4
    return [h for h in hits if h.score >= threshold and h.example.id != own_id]


def unique_by_id(examples: Iterable[Example]) -> dict[str, Example]:
    """Examples keyed by id, first occurrence wins, input order kept."""
    out: dict[str, Example] = {}
    for example in examples:
        if not isinstance(example, Example):
            raise TypeError(f"expected Example objects, got {type(example).__name__}: {example!r}")
        out.setdefault(example.id, example)
    return out


def check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")


def as_id_list(ids: Iterable[str]) -> list[str]:
    """``ids`` as a list, refusing a bare string (which would iterate character by character)."""
    if isinstance(ids, str):
        raise TypeError(
            f"ids must be a list of ids, got the single string {ids!r}: wrap it in a list"
        )
    return list(ids)


def check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be None or an int >= 0, got {limit!r}")

"""The workflow memory (Agent Workflow Memory): induced workflows, their A/B stats, retirement.

Workflows live in their own Chroma collection (default ``"workflows"``), beside
the example store's, in cosine space; the embedded document is the scope, the
title and the abstract task statement, so a new task's prompt finds the
workflow of its kind.

    from selfimprove.memory.workflows import WorkflowMemory, stats_from_attempts, unhelpful
    memory = WorkflowMemory.persistent("runs/store", embeddings=MiniLMEmbeddings())
    memory = WorkflowMemory(chromadb.EphemeralClient())  # in memory, for tests and scripts
    memory.add(induce_workflows(tasks, answers))
    [(workflow, score)] = memory.retrieve(task, k=1)
    memory.record_round(3, {workflow.id: WorkflowStats(uses=4, successes=1, ...)})
    memory.retire(unhelpful(memory.stats()), round=3, reason="no lift over control")

Usage stats (samples with the workflow in the prompt vs. samples of the same tasks
without it) come two ways, both safe to repeat when a round resumes:
``stats_from_attempts`` derives them from stored attempts whose metadata names the
``workflow`` and its ``workflow_arm`` (``"with"`` or ``"control"``), and
``record_round(round, stats)`` keeps one record per round on the workflow itself
(a round recorded again replaces its record), summed by ``stats()``.

Encoding (Chroma metadata holds flat scalars only): ``"workflow"`` is the whole
workflow as JSON (the one source read back); ``scope``, ``title``, ``origin``,
``inducer``, ``round`` and ``source_task_ids`` (a JSON list) are copies for plain
chromadb readers; ``retired`` (bool), ``retired_round`` and ``retired_reason``
record retirement; ``usage.round.<r>`` holds round r's ``WorkflowStats`` as JSON.

Chroma indexes string and number metadata but not booleans: a filter on
``retired`` would scan the metadata of the whole database, the example store's
included, on every query. Retirement is therefore checked here, on the records
Chroma returns (by scope, an indexed string).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from selfimprove.agents.workflows import Workflow, workflow_scope
from selfimprove.memory.base import as_id_list, check_k
from selfimprove.memory.chroma import ChromaCollection
from selfimprove.memory.embeddings import embed_texts
from selfimprove.types import Example, Task

WORKFLOW_KEY = "workflow"
ARMS = ("with", "control")
USAGE_PREFIX = "usage.round."
_PLACEHOLDER = re.compile(r"<[A-Z]+\d*>(?:-th)?")


def workflow_document(workflow: Workflow) -> str:
    """The embedded text: scope, title and the abstract statement (the ``Task:`` line).

    Placeholders are left out: to MiniLM "<A>" is noise that pulls every abstract
    statement together (measured on the built-in suites: with them, 15 of 80 held-out
    answer tasks retrieved a workflow of another suite; without them, none).
    """
    first = workflow.text.split("\n", 1)[0]
    statement = first.removeprefix("Task:").strip() if first.startswith("Task:") else ""
    text = "\n".join(p for p in (workflow.scope, workflow.title, statement) if p)
    return re.sub(r"[ \t]+", " ", _PLACEHOLDER.sub("", text))


def _hits(metadatas: list, distances: list, min_score: float) -> list[tuple[Workflow, float]]:
    """Query results as ``(workflow, cosine similarity)``, best first, below ``min_score`` cut."""
    # float32 distances can dip just below 0 for the query itself
    hits = [
        (_decode(m), min(1.0, 1.0 - float(d))) for m, d in zip(metadatas, distances, strict=True)
    ]
    return [(w, score) for w, score in hits if score >= min_score]


def _decode(metadata: Mapping[str, Any]) -> Workflow:
    try:
        return Workflow.model_validate_json(metadata[WORKFLOW_KEY])
    except KeyError:
        raise ValueError(
            f"Chroma record without a {WORKFLOW_KEY!r} key (keys {sorted(metadata)!r}): the "
            "collection holds records that are not workflows; use another collection name"
        ) from None


class WorkflowMemory(ChromaCollection):
    """Workflows in one Chroma collection, with retirement marks.

    Args:
        client: A chromadb client (``PersistentClient``, ``HttpClient``, ``EphemeralClient``).
        collection: Collection name (3-63 characters); keep it apart from the example store's.
        embeddings: The embedding function. None: the one the existing collection
            records, or ``MiniLMEmbeddings()`` for a new one.
    """

    default_collection: ClassVar[str] = "workflows"

    def __repr__(self) -> str:
        return f"WorkflowMemory(collection={self.collection.name!r}, {len(self)} workflows)"

    def __len__(self) -> int:
        return self.collection.count()

    def add(self, workflows: Iterable[Workflow]) -> int:
        """Store the workflows whose ids are not stored yet; return how many were new."""
        unique: dict[str, Workflow] = {}
        for workflow in workflows:
            if not isinstance(workflow, Workflow):
                raise TypeError(f"expected Workflow objects, got {type(workflow).__name__}")
            unique.setdefault(workflow.id, workflow)
        if not unique:
            return 0
        stored = set(self.collection.get(ids=list(unique), include=[])["ids"])
        new = [w for i, w in unique.items() if i not in stored]
        if not new:
            return 0
        documents = [workflow_document(w) for w in new]
        self.collection.add(
            ids=[w.id for w in new],
            embeddings=embed_texts(self.embeddings, documents),
            documents=documents,
            metadatas=[_metadata(w) for w in new],
        )
        return len(new)

    def get(self, ids: Iterable[str]) -> list[Workflow]:
        """The stored workflows with these ids, in the order asked; unknown ids are skipped."""
        wanted = list(dict.fromkeys(as_id_list(ids)))
        if not wanted:
            return []
        got = self.collection.get(ids=wanted, include=["metadatas"])
        by_id = {i: _decode(m) for i, m in zip(got["ids"], got["metadatas"], strict=True)}
        return [by_id[i] for i in wanted if i in by_id]

    def all(self, *, include_retired: bool = True) -> list[Workflow]:
        """Every stored workflow, by round, scope and id."""
        got = self.collection.get(include=["metadatas"])
        metas = [m for m in got["metadatas"] if include_retired or not m["retired"]]
        return sorted(map(_decode, metas), key=lambda w: (w.round, w.scope, w.id))

    def retrieve(
        self,
        task_or_text: Task | str,
        *,
        k: int = 1,
        min_score: float = 0.0,
        same_scope: bool = True,
    ) -> list[tuple[Workflow, float]]:
        """The ``k`` live workflows closest to a task's prompt (or a text), best first.

        Retired workflows are never returned. Given a ``Task`` and ``same_scope``,
        only workflows of ``workflow_scope(task)`` are candidates. Scores are cosine
        similarities; hits below ``min_score`` are dropped.
        """
        check_k(k)
        if isinstance(task_or_text, Task):
            text = task_or_text.prompt
            scope = workflow_scope(task_or_text) if same_scope else None
        elif isinstance(task_or_text, str):
            text, scope = task_or_text, None
        else:
            raise TypeError(f"expected a Task or a str, got {type(task_or_text).__name__}")
        [hits] = self._live(embed_texts(self.embeddings, [text]), k, scope, min_score)
        return hits

    def retrieve_many(
        self, tasks: Sequence[Task], *, k: int = 1, min_score: float = 0.0
    ) -> list[list[tuple[Workflow, float]]]:
        """``retrieve(task, k=k, min_score=min_score)`` for each task, embedded in one batch.

        One Chroma query per scope, so a round's recall costs one embedding call.
        """
        check_k(k)
        if not tasks:
            return []
        vectors = embed_texts(self.embeddings, [t.prompt for t in tasks])
        by_scope: dict[str, list[int]] = {}
        for i, task in enumerate(tasks):
            by_scope.setdefault(workflow_scope(task), []).append(i)
        found: list[list[tuple[Workflow, float]]] = [[] for _ in tasks]
        for scope, rows in by_scope.items():
            for i, hits in zip(rows, self._live(vectors[rows], k, scope, min_score), strict=True):
                found[i] = hits
        return found

    def _live(
        self, vectors: Any, k: int, scope: str | None, min_score: float
    ) -> list[list[tuple[Workflow, float]]]:
        """Per query vector, the ``k`` nearest live workflows (of ``scope``), ``min_score`` cut.

        Retired ones are dropped here (see the module docstring), fetching more
        neighbours while they crowd out live ones.
        """
        n = k
        while True:
            got = self.collection.query(
                query_embeddings=vectors,
                n_results=n,
                where=None if scope is None else {"scope": scope},
                include=["metadatas", "distances"],
            )
            rows = [
                [(m, d) for m, d in zip(metas, dists, strict=True) if not m["retired"]][:k]
                for metas, dists in zip(got["metadatas"], got["distances"], strict=True)
            ]
            exhausted = len(got["ids"][0]) < n  # every candidate seen
            if exhausted or all(len(row) == k for row in rows):
                return [_hits([m for m, _ in row], [d for _, d in row], min_score) for row in rows]
            n *= 4

    def retire(self, ids: Iterable[str], *, round: int, reason: str) -> int:
        """Mark these workflows retired; return how many were live (others are left as they are)."""
        wanted = list(dict.fromkeys(as_id_list(ids)))
        if not wanted:
            return 0
        got = self.collection.get(ids=wanted, include=["metadatas"])
        live = [i for i, m in zip(got["ids"], got["metadatas"], strict=True) if not m["retired"]]
        if live:
            mark = {"retired": True, "retired_round": round, "retired_reason": reason}
            self.collection.update(ids=live, metadatas=[dict(mark) for _ in live])
        return len(live)

    def record_round(self, round: int, stats: Mapping[str, WorkflowStats]) -> int:
        """Store one round's usage per workflow; return how many stored workflows it names.

        A round recorded again replaces its earlier record, so a resumed round never
        counts twice; ids that are not stored are skipped.
        """
        wanted = list(dict.fromkeys(as_id_list(stats)))
        stored = self.collection.get(ids=wanted, include=[])["ids"] if wanted else []
        if stored:
            key = f"{USAGE_PREFIX}{round}"
            usage = [{key: stats[i].model_dump_json()} for i in stored]
            self.collection.update(ids=stored, metadatas=usage)
        return len(stored)

    def stats(self) -> dict[str, WorkflowStats]:
        """Usage summed over the recorded rounds, for each workflow with any record."""
        got = self.collection.get(include=["metadatas"])
        out = {}
        for i, metadata in zip(got["ids"], got["metadatas"], strict=True):
            rows = [v for k, v in metadata.items() if k.startswith(USAGE_PREFIX)]
            if rows:
                out[i] = sum(map(WorkflowStats.model_validate_json, rows), WorkflowStats())
        return out

    def retired(self) -> dict[str, str]:
        """Retired workflow ids and why they were retired."""
        got = self.collection.get(include=["metadatas"])
        return {
            i: m.get("retired_reason", "")
            for i, m in zip(got["ids"], got["metadatas"], strict=True)
            if m["retired"]
        }


def _metadata(workflow: Workflow) -> dict[str, Any]:
    return {
        WORKFLOW_KEY: workflow.model_dump_json(),
        "scope": workflow.scope,
        "title": workflow.title,
        "origin": workflow.origin,
        "inducer": workflow.inducer,
        "round": workflow.round,
        "source_task_ids": json.dumps(workflow.source_task_ids),
        "retired": False,
    }


class WorkflowStats(BaseModel):
    """How samples of the same tasks fared with a workflow in the prompt and without it."""

    model_config = ConfigDict(frozen=True)

    uses: int = 0
    successes: int = 0
    control_uses: int = 0
    control_successes: int = 0

    @property
    def with_rate(self) -> float | None:
        return self.successes / self.uses if self.uses else None

    @property
    def control_rate(self) -> float | None:
        return self.control_successes / self.control_uses if self.control_uses else None

    @property
    def lift(self) -> float | None:
        """Success rate with the workflow minus without it (None until both arms have samples)."""
        if self.with_rate is None or self.control_rate is None:
            return None
        return self.with_rate - self.control_rate

    def __add__(self, other: WorkflowStats) -> WorkflowStats:
        return WorkflowStats(
            **{name: getattr(self, name) + getattr(other, name) for name in type(self).model_fields}
        )


def stats_from_attempts(attempts: Iterable[Example]) -> dict[str, WorkflowStats]:
    """Per workflow id, uses and successes of both arms, counted from stored attempts.

    Counts ``kind="attempt"`` examples whose metadata names a ``workflow`` and a
    ``workflow_arm`` (``"with"`` or ``"control"``) and that were graded
    (``passed`` is not None), each weighing ``metadata["count"]`` samples (identical
    answers are stored as one attempt) or 1; positives and negatives derived from an
    attempt are not counted again, and an example id seen twice counts once, as in
    the store.
    """
    counts: dict[str, list[int]] = {}
    seen: set[str] = set()
    for example in attempts:
        workflow = example.metadata.get("workflow")
        arm = example.metadata.get("workflow_arm")
        if example.kind != "attempt" or example.passed is None or arm not in ARMS:
            continue
        if not isinstance(workflow, str) or not workflow or example.id in seen:
            continue
        seen.add(example.id)
        count = example.metadata.get("count", 1)
        weight = count if isinstance(count, int) and not isinstance(count, bool) else 1
        row = counts.setdefault(workflow, [0, 0, 0, 0])
        offset = 0 if arm == "with" else 2
        row[offset] += max(weight, 1)
        row[offset + 1] += max(weight, 1) * int(example.passed)
    return {
        workflow: WorkflowStats(uses=u, successes=s, control_uses=cu, control_successes=cs)
        for workflow, (u, s, cu, cs) in counts.items()
    }


def unhelpful(
    stats: Mapping[str, WorkflowStats], *, min_uses: int = 8, margin: float = 0.0
) -> list[str]:
    """Ids of workflows whose use does not raise success, sorted.

    A workflow is unhelpful once both arms have at least ``min_uses`` samples and
    its success rate is at most the control's plus ``margin``; with fewer samples
    it is kept (not enough evidence either way).
    """
    return sorted(
        workflow
        for workflow, s in stats.items()
        if s.uses >= max(min_uses, 1)
        and s.control_uses >= max(min_uses, 1)
        and s.successes / s.uses <= s.control_successes / s.control_uses + margin
    )

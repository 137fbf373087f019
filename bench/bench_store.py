"""The store layer against raw chromadb: add and query at 10k and 100k examples, query at 1M.

Run it from the repository root (about 9 minutes on 2 cores with the defaults)::

    python bench/bench_store.py                           # 10k, 100k, then up to 1M
    python bench/bench_store.py --sizes 2000,10000 --large 0 --queries 30

Two arms on the same synthetic examples (``bench/_synthetic.py``: the loop's
attempts, positives, negatives and pairs with its lineage and metadata; a few
hundred characters each):

- **ours**: ``ChromaStore.persistent`` (what ``open_store(StoreConfig())``
  opens), ``store.add`` and ``store.search``;
- **raw**: a ``chromadb.PersistentClient`` collection (cosine) given ids,
  vectors, documents and flat metadata: what it takes to give the examples
  back (lineage and metadata keys to filter on, prompt, completion, rejected
  and reason as strings), ``collection.add`` and ``collection.query``.

Both get the same precomputed vectors (``HashEmbeddings`` of the documents,
computed before the clock starts; ours looks them up by text through
``PrecomputedEmbeddings``), so the embedding costs nothing in either and the
figures are the layer's. Adds go in batches of ``--batch`` (500: a round's
examples, which the loop stores in one ``store.add``), alternating between the
arms batch by batch; the sizes are reached one after the other in the same
stores. Queries are task prompts, ``k=4`` (``retrieve_k`` is at most 16), with
the filter the loop's worked-example retrieval uses (earlier positives of other
tasks, not held out) and without one, alternating between the arms.

Then ours alone grows towards ``--large`` examples (1M) and the query p50 is
measured at the size reached. A million does not fit in ``make bench``'s time:
Chroma adds 700 to 1,000 such records a second here and slows as it grows
(measured with raw chromadb on 30k random 384-d vectors: 1,675/s with vectors
alone, HNSW using both cores; 817/s with documents and metadata, the extra
single-threaded SQLite work; switching off the full-text and string indexes
with a Chroma ``Schema`` changed nothing measurable), so 1M takes about 40
minutes. The growth stops ``--budget`` seconds into the run (the script stays
under 9 minutes) and the size reached, its add rate and the time the rest would
take are reported; ``make bench-store-1m`` (``--sizes 10000 --large 1000000
--budget 0``) goes all the way.

It prints each figure and, last, the ratios ours/raw of add time and of query
p50 (target: at most 1.2) and the query p50 at the largest size (target: under
20 ms), and appends one JSON line to ``bench/results/store.jsonl``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
from _results import FOLDER, append, machine
from _synthetic import (
    PrecomputedEmbeddings,
    bench_tasks,
    heldout_attempts,
    raw_metadata,
    raw_worked_where,
    round_examples,
)
from rich.progress import Progress

from selfimprove.graphs.collect_agents import _worked_where
from selfimprove.memory import ChromaStore, HashEmbeddings
from selfimprove.tasks import TaskSet
from selfimprove.types import Example, Task

RESULTS = FOLDER / "store.jsonl"
K = 4
QUERY_RESERVE_S = 60  # kept back from --budget for the queries at the largest size


class Arms:
    """Both stores, the vectors ours looks up, and the examples' source."""

    def __init__(self, folder: Path, tasks: TaskSet, batch: int) -> None:
        self.lookup = PrecomputedEmbeddings()
        self.ours = ChromaStore.persistent(folder / "ours", embeddings=self.lookup)
        client = chromadb.PersistentClient(path=str(folder / "raw"))
        self.raw = client.create_collection(
            "examples", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
        )
        self.hashing = HashEmbeddings()
        self.tasks, self.batch = tasks, batch
        self.size = 0
        self.round = 0
        self.pending = heldout_attempts(tasks.heldout)  # the baseline's attempts come first
        self.add_s = {"ours": 0.0, "raw": 0.0}

    def next_batch(self) -> list[Example]:
        while len(self.pending) < self.batch:
            self.round += 1
            self.pending += round_examples(self.tasks.train, round=self.round, n=self.batch)
        out, self.pending = self.pending[: self.batch], self.pending[self.batch :]
        return out

    def add(self, examples: list[Example], *, raw: bool = True) -> None:
        """Add a batch to ours (and raw), timing each add alone; the vectors are made first."""
        documents = [e.document for e in examples]
        vectors = self.hashing.embed(documents)
        metadatas = [raw_metadata(e) for e in examples]
        ids = [e.id for e in examples]
        self.lookup.put(documents, vectors)

        def ours() -> None:
            self.ours.add(examples)

        def plain() -> None:
            self.raw.add(ids=ids, embeddings=vectors, documents=documents, metadatas=metadatas)

        arms = [("ours", ours), ("raw", plain)] if raw else [("ours", ours)]
        if raw and (self.size // self.batch) % 2:  # alternate who goes first
            arms.reverse()
        for name, work in arms:
            start = time.perf_counter()
            work()
            self.add_s[name] += time.perf_counter() - start
        self.lookup.clear()
        self.size += len(examples)


def _queries(tasks: TaskSet, n: int) -> list[Task]:
    """``n`` training tasks, spread over the suites."""
    step = max(1, len(tasks.train) // n)
    return tasks.train[::step][:n]


def query_times(arms: Arms, queries: list[Task], *, raw: bool = True) -> dict[str, Any]:
    """p50/p95 ms of ours and raw, with the loop's filter and without, alternating arms."""
    vectors = arms.hashing.embed([t.prompt for t in queries])
    arms.lookup.put([t.prompt for t in queries], vectors)
    later = arms.round + 1  # "earlier rounds" is every stored round
    times: dict[str, list[float]] = {}

    def timed(name: str, work: Callable[[], Any]) -> None:
        start = time.perf_counter()
        work()
        times.setdefault(name, []).append(time.perf_counter() - start)

    for i, (task, vector) in enumerate(zip(queries, vectors, strict=True)):
        raw_where = raw_worked_where(task.id, later)
        pairs = {
            "filtered": (
                partial(arms.ours.search, task.prompt, k=K, where=_worked_where(task, later)),
                partial(_raw_query, arms, vector, raw_where),
            ),
            "plain": (
                partial(arms.ours.search, task.prompt, k=K),
                partial(_raw_query, arms, vector, None),
            ),
        }
        for kind, (ours, plain) in pairs.items():  # each pair back to back, who first alternating
            jobs = [(f"ours {kind}", ours), (f"raw {kind}", plain)][: 2 if raw else 1]
            for name, work in jobs if i % 2 else reversed(jobs):
                timed(name, work)
    arms.lookup.clear()
    return {
        name: {"p50": 1000 * float(np.median(t)), "p95": 1000 * float(np.percentile(t, 95))}
        for name, t in times.items()
    }


def _raw_query(arms: Arms, vector: np.ndarray, where: dict[str, Any] | None) -> Any:
    return arms.raw.query(
        query_embeddings=vector[None],
        n_results=K,
        where=where,
        include=["metadatas", "distances"],  # the metadata holds every field
    )


def grow(arms: Arms, size: int, progress: Progress, *, raw: bool = True, until: float = 0) -> None:
    """Add batches until ``size`` examples are stored (or the clock passes ``until``)."""
    bar = progress.add_task(f"adding to {size:,}" + ("" if raw else " (ours)"), total=size)
    progress.advance(bar, arms.size)
    while arms.size < size and not (until and time.perf_counter() > until):
        examples = arms.next_batch()[: size - arms.size]
        arms.add(examples, raw=raw)
        progress.advance(bar, len(examples))
    progress.remove_task(bar)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="sizes both arms are measured at")
    parser.add_argument("--large", type=int, default=1_000_000, help="ours alone, then (0: skip)")
    parser.add_argument(
        "--budget", type=float, default=510, help="seconds before --large stops (0: no limit)"
    )
    parser.add_argument("--batch", type=int, default=500, help="examples per add")
    parser.add_argument("--queries", type=int, default=100, help="queries per arm and size")
    parser.add_argument("--workdir", type=Path, default=None, help="where the stores go (tmp)")
    args = parser.parse_args()
    started = time.perf_counter()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    tasks = bench_tasks()
    queries = _queries(tasks, args.queries)
    folder = Path(tempfile.mkdtemp(prefix="bench-store-", dir=args.workdir))
    results: dict[str, Any] = {}
    try:
        arms = Arms(folder, tasks, args.batch)
        with Progress(transient=True) as progress:
            for size in sizes:
                before = dict(arms.add_s)
                added = size - arms.size
                grow(arms, size, progress)
                rates = {k: added / (arms.add_s[k] - before[k]) for k in arms.add_s}
                results[str(size)] = {"add_per_s": rates, "query_ms": query_times(arms, queries)}
            large = None
            if args.large > arms.size:
                start_size, before = arms.size, arms.add_s["ours"]
                deadline = started + args.budget - QUERY_RESERVE_S if args.budget else 0
                grow(arms, args.large, progress, raw=False, until=deadline)
                rate = (arms.size - start_size) / max(arms.add_s["ours"] - before, 1e-9)
                ms = query_times(arms, queries, raw=False)
                large = {"target": args.large, "reached": arms.size, "add_per_s": rate,
                         "query_ms": ms, "rest_eta_s": (args.large - arms.size) / rate}  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    wall = time.perf_counter() - started
    _report(results, large, sizes, args, wall)


def _report(results: dict[str, Any], large: dict[str, Any] | None, sizes, args, wall) -> None:
    """Append the JSON line, then print every figure and, last, the ratios."""
    ratios = {}
    for size in sizes:
        r = results[str(size)]
        q = r["query_ms"]
        ratios[str(size)] = {
            "add": r["add_per_s"]["raw"] / r["add_per_s"]["ours"],  # time ours / time raw
            "query_filtered_p50": q["ours filtered"]["p50"] / q["raw filtered"]["p50"],
            "query_plain_p50": q["ours plain"]["p50"] / q["raw plain"]["p50"],
        }
    record = {
        **machine(),
        "chromadb": chromadb.__version__,
        "batch": args.batch,
        "k": K,
        "queries": args.queries,
        "sizes": _rounded(results),
        "ratios": _rounded(ratios),
        "large": _rounded(large),
        "wall_s": round(wall, 1),
    }
    append(RESULTS, record)
    print(f"batches of {args.batch}, k={K}, {args.queries} queries per arm, "
          f"{os.cpu_count()} cpus, chromadb {chromadb.__version__}, {wall:.0f}s")  # fmt: skip
    for size in sizes:
        r = results[str(size)]
        add, q = r["add_per_s"], r["query_ms"]
        print(f"{size:>9,}  add/s       ours {add['ours']:8.0f}   raw {add['raw']:8.0f}")
        for kind in ("filtered", "plain"):
            ours, raw = q[f"ours {kind}"], q[f"raw {kind}"]
            print(f"{size:>9,}  {kind:<9}ms p50 ours {ours['p50']:8.2f}   raw {raw['p50']:8.2f}"
                  f"   p95 ours {ours['p95']:8.2f}   raw {raw['p95']:8.2f}")  # fmt: skip
    if large is not None:
        rest = large["target"] - large["reached"]
        print(f"large: {large['reached']:,} of {large['target']:,} stored within the budget at "
              f"{large['add_per_s']:.0f} adds/s (ours); the other {rest:,} would take "
              f"{large['rest_eta_s'] / 60:.0f} min more")  # fmt: skip
    for size in sizes:
        r = ratios[str(size)]
        print(f"ratio ours/raw at {size:,}: add time {r['add']:.2f}x, query p50 filtered "
              f"{r['query_filtered_p50']:.2f}x, plain {r['query_plain_p50']:.2f}x (target <= 1.2)")  # fmt: skip
    if large is not None:
        q = large["query_ms"]
        print(f"query p50 at {large['reached']:,} (ours): filtered {q['ours filtered']['p50']:.2f} ms, "
              f"plain {q['ours plain']['p50']:.2f} ms (target < 20 ms at 1M)")  # fmt: skip


def _rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return round(value, 3) if isinstance(value, float) else value


if __name__ == "__main__":
    main()

"""Round cost as the store grows: a round's store work must follow its new examples, not the total.

Run it from the repository root (about 6 minutes on 2 cores with the defaults)::

    python bench/bench_scaling.py                          # 500 new examples; 1k, 10k, 100k stored
    python bench/bench_scaling.py --sizes 1000,10000 --repeats 2

One embedded Chroma store (``ChromaStore.persistent``, hash embeddings) per size
is filled with older rounds: the baseline's held-out attempts (round 0) and
rounds of ``--new`` synthetic examples each (``bench/_synthetic.py``: attempts,
positives, negatives and pairs built by ``collect_examples.task_examples``),
with the workflows induced from each round in the workflow memory beside it.
Then one round of ``--new`` examples runs every store-side step the loop does,
through the library's own functions, timed one by one:

- ``choose tasks``: ``round_agents.choose_tasks`` with the curriculum on, given
  the ``TaskHistory`` the round graph keeps (read up to the round before);
- ``recall workflows``, ``retrieve worked``: ``collect_agents.recall_workflows``
  and ``retrieve_worked`` (``retrieve_k=2``) for the round's tasks;
- ``store examples``: ``store.add`` of the round's examples (id look-up, embedding);
- ``induce workflows``: ``collect_agents.induce_step`` (add, usage record, stats, retirement);
- ``failed tasks``: ``round_agents.failed_tasks`` (what augmentation starts from);
- ``training examples``: ``round._training_examples`` (positives and pairs of the
  round, exact duplicates dropped), then ``decontaminate``
  (``check_decontaminated`` against the held-out tasks), ``curate``
  (``round_agents.curate_round``) and ``export`` (``sft_dataset``/``dpo_dataset``).

Generation, verification, training and evaluation are left out: their cost
depends on the round's tasks and the model, not on the store. The round's
examples are deleted afterwards, so every repeat sees the same store; repeats
alternate between the sizes so that load on the machine hits them alike.
It prints the seconds per step at each size (the best of ``--repeats`` rounds:
other work on the machine only ever adds time) and, last, the ratio
cost(largest)/cost(smallest) per step, for the whole round and for the round
without worked-example retrieval (off by default, and the one step that still
grows: a task's own earlier examples crowd the nearest neighbours its filter
excludes), target at most 1.5, and appends one JSON line to
``bench/results/scaling.jsonl``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from _results import FOLDER, append, machine
from _synthetic import bench_tasks, heldout_attempts, round_examples
from rich.progress import Progress

from selfimprove.agents.workflows import induce_workflows
from selfimprove.config import Config
from selfimprove.graphs.collect import CollectSettings
from selfimprove.graphs.collect_agents import induce_step, recall_workflows, retrieve_worked
from selfimprove.graphs.round import RoundDeps, _training_examples
from selfimprove.graphs.round_agents import choose_tasks, curate_round, failed_tasks, task_pool
from selfimprove.memory import ChromaStore, HashEmbeddings, open_workflows
from selfimprove.memory.decontaminate import check_decontaminated
from selfimprove.memory.export import dpo_dataset, sft_dataset
from selfimprove.memory.workflows import WorkflowMemory
from selfimprove.tasks import TaskSet
from selfimprove.tasks.curriculum import TaskHistory
from selfimprove.types import Example

RESULTS = FOLDER / "scaling.jsonl"
TASKS_PER_ROUND = 64  # at about 8.5 examples per task, enough for 500 new examples
FILL_BATCH = 5000  # older examples added per store.add while filling
NO_RETRIEVAL = "round, retrieve_k=0"


@dataclass
class World:
    """One store of ``size`` older examples, its workflow memory and the round's dependencies."""

    size: int
    store: ChromaStore
    workflows: WorkflowMemory
    deps: RoundDeps
    next_round: int


def _config(out_dir: Path) -> Config:
    config = Config()
    config.loop.tasks_per_round = TASKS_PER_ROUND
    config.loop.curriculum = True
    config.loop.curate = True
    config.loop.out_dir = out_dir
    return config


def _induce(memory: WorkflowMemory, examples: list[Example], tasks: TaskSet, round: int) -> None:
    """The workflows a round's first positive per task induces (as the collect graph's induce)."""
    by_id = {t.id: t for t in tasks.train}
    solved: dict[str, str] = {}
    for e in examples:
        if e.kind == "positive" and e.task_id in by_id:
            solved.setdefault(e.task_id, e.completion)
    answers = list(solved.values())
    memory.add(induce_workflows([by_id[i] for i in solved], answers, round=round))


def build_world(size: int, new: int, tasks: TaskSet, folder: Path, progress: Progress) -> World:
    """A store filled with ``size`` examples of older rounds (see the module docstring)."""
    store = ChromaStore.persistent(folder / "store", embeddings=HashEmbeddings())
    workflows = open_workflows(store)
    bar = progress.add_task(f"filling {size:,}", total=size)
    baseline = heldout_attempts(tasks.heldout)[: size // 10]
    store.add(baseline)
    progress.advance(bar, len(baseline))
    stored, round, pending = len(baseline), 0, []
    while stored < size:
        round += 1
        n = min(new, size - stored - len(pending))
        examples = round_examples(tasks.train, round=round, n=n, seed=size)
        _induce(workflows, examples, tasks, round)
        pending += examples
        if len(pending) >= FILL_BATCH or stored + len(pending) == size:  # rounds per add: faster
            store.add(pending)
            stored += len(pending)
            progress.advance(bar, len(pending))
            pending = []
    progress.remove_task(bar)
    deps = RoundDeps(
        config=_config(folder),
        task_set=tasks,
        store=store,
        grader=None,  # type: ignore[arg-type]  # no step here grades
        load_model=lambda path: None,  # type: ignore[arg-type,return-value]
        collect=lambda model, tasks, round: {},
        train=lambda *args: None,
        out_dir=folder,
        show_progress=False,
        workflows=workflows,
    )
    return World(size, store, workflows, deps, round + 1)


def run_round(world: World, new: int, repeat: int) -> dict[str, float]:
    """One round's store-side steps on ``world``; seconds per step. The store is left as found."""
    deps, r = world.deps, world.next_round
    settings = CollectSettings(round=r, retrieve_k=2, workflows=True)
    collect = SimpleNamespace(
        store=world.store, workflows=world.workflows, teacher=None, settings=settings
    )
    times: dict[str, float] = {}

    def step(name: str, work: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        out = work()
        times[name] = time.perf_counter() - start
        return out

    history = TaskHistory(world.store)  # as the round graph keeps it: read up to the last round
    history.records(before_round=r - 1)
    tasks, _ = step("choose tasks", lambda: choose_tasks(deps, r, history))
    recalled = step("recall workflows", lambda: recall_workflows(collect, tasks))
    step("retrieve worked", lambda: retrieve_worked(collect, tasks))
    examples = round_examples(tasks, round=r, n=new, seed=repeat)
    step("store examples", lambda: world.store.add(examples))
    state = _induce_state(examples, recalled["workflows"])
    solved = {e.task_id: e.completion for e in examples if e.kind == "positive"}
    pairs = [(t, solved[t.id]) for t in tasks if t.id in solved]
    step("induce workflows", lambda: induce_step(collect, pairs, state))
    pool = task_pool(deps, {})
    step("failed tasks", lambda: failed_tasks(deps, r, pool))
    positives, dpo_pairs = step("training examples", lambda: _training_examples(world.store, r))
    heldout = deps.task_set.heldout + deps.task_set.guard
    step("decontaminate", lambda: check_decontaminated(positives + dpo_pairs, heldout))
    positives, dpo_pairs, _ = step("curate", lambda: curate_round(deps, r, positives, dpo_pairs))
    step("export", lambda: (sft_dataset(positives), dpo_dataset(dpo_pairs)))
    world.store.delete([e.id for e in examples])  # the next repeat sees the same store
    return times


def _induce_state(examples: list[Example], recalled: dict[str, str]) -> dict[str, Any]:
    """The collect state ``induce_step`` reads: each recalled task's samples, half with it."""
    samples: dict[str, list[dict[str, Any]]] = {}
    for e in examples:
        if e.kind == "attempt" and e.task_id in recalled:
            row = samples.setdefault(e.task_id, [])
            row.append({"passed": e.passed, "arm": "with" if len(row) % 2 else "control"})
    return {"workflows": recalled, "samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="older examples stored")
    parser.add_argument("--new", type=int, default=500, help="new examples in the round")
    parser.add_argument("--repeats", type=int, default=5, help="rounds per size (best kept)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the stores go (tmp)")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    workdir = Path(tempfile.mkdtemp(prefix="bench-scaling-", dir=args.workdir))
    started = time.perf_counter()
    tasks = bench_tasks()
    try:
        with Progress(transient=True) as progress:
            worlds = [build_world(s, args.new, tasks, workdir / str(s), progress) for s in sizes]
            fill_s = time.perf_counter() - started
            bar = progress.add_task("rounds", total=args.repeats * len(worlds))
            run_round(worlds[0], args.new, -1)  # warm-up: first imports (datasets), caches
            runs: dict[int, list[dict[str, float]]] = {s: [] for s in sizes}
            for repeat in range(args.repeats):  # alternate sizes: drift hits all alike
                for world in worlds:
                    runs[world.size].append(run_round(world, args.new, repeat))
                    progress.advance(bar)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    steps = list(runs[sizes[0]][0])
    # The best of the repeats, as timeit reports: other work on the machine only adds time.
    best = {s: {name: min(run[name] for run in runs[s]) for name in steps} for s in sizes}
    for s in sizes:
        best[s]["round"] = min(sum(run.values()) for run in runs[s])
        # retrieval of worked examples is off by default (loop.retrieve_k: 0)
        best[s][NO_RETRIEVAL] = min(sum(run.values()) - run["retrieve worked"] for run in runs[s])
    small, large = sizes[0], sizes[-1]
    totals = [*steps, "round", NO_RETRIEVAL]
    ratios = {name: best[large][name] / best[small][name] for name in totals}
    record = {
        **machine(),
        "new": args.new,
        "repeats": args.repeats,
        "fill_s": round(fill_s, 1),
        "seconds": {str(s): {k: round(v, 4) for k, v in best[s].items()} for s in sizes},
        "ratio": {k: round(v, 2) for k, v in ratios.items()},
        "wall_s": round(time.perf_counter() - started, 1),
    }
    append(RESULTS, record)
    print(f"{args.new} new examples per round, best of {args.repeats} rounds per size, "
          f"{os.cpu_count()} cpus; filling the stores took {fill_s:.0f}s")  # fmt: skip
    header = "".join(f"{s:>10,}" for s in sizes)
    print(f"{'seconds per step':<20}{header}   ratio {large:,}/{small:,}")
    for name in totals:
        row = "".join(f"{best[s][name]:10.3f}" for s in sizes)
        print(f"{name:<20}{row}   {ratios[name]:6.2f}x")
    print(f"round cost ratio ({large:,} / {small:,} stored): {ratios['round']:.2f}x, "
          f"{ratios[NO_RETRIEVAL]:.2f}x without retrieval (target <= 1.5)")  # fmt: skip


if __name__ == "__main__":
    main()

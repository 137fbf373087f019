"""A scripted run: the real round graph, loop driver and run folder, with instant parts.

For tests and demos of everything that watches or steers a run (the Python API's
``Run``, the REST API, the console) without loading or training a model:

    handle = start_scripted_run("runs/x", rounds=2, require_approval=True)
    Run("runs/x").status().state      # "awaiting_approval" once round 1 is gated
    Run("runs/x").approve(); handle.wait()

Each model folder name maps to how many held-out tasks it answers right
(``SKILL``); "training" round N gives ``model-N``. Collection stores one passed
and one failed attempt per task, a pair and an injected negative with lineage,
in a real Chroma store under the run folder (hashed embeddings).

``student=`` puts a real model behind the folder names (say, a ``LiteLLMModel``
at a local server): evaluation asks it, and collection runs the real collect
graph (``COLLECT`` settings) with it; training stays instant.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from selfimprove.config import Config
from selfimprove.loop import LoopHandle, drive_deps, run_lock
from selfimprove.models.base import ChatModel
from selfimprove.tasks import Grader, TaskSet, builtin_tasks
from selfimprove.testing.fakes import FakeChatModel
from selfimprove.types import Example, Task

COLLECT: dict[str, Any] = {"samples_per_task": 2, "debug_turns": 1, "injections_per_answer": 1}
HELDOUT = builtin_tasks("arithmetic", split="heldout", n=10)
TRAIN = builtin_tasks("arithmetic", split="train", n=6)
SKILL = {"base": 3, "model-1": 6, "model-2": 5, "model-3": 8, "model-4": 9}


def scripted_config(
    out_dir: str | Path, *, rounds: int = 2, require_approval: bool = False, **loop: Any
) -> Config:
    config = Config()
    config.student.model = "base"
    config.tasks.suites = ["arithmetic"]
    config.tasks.heldout_per_suite = len(HELDOUT)
    config.tasks.train_per_suite = len(TRAIN)
    config.loop.rounds = rounds
    config.loop.require_approval = require_approval
    config.loop.out_dir = Path(out_dir)
    config.store.path = Path(out_dir) / "store"
    config.store.embedding = "hash"
    for key, value in loop.items():  # other loop settings (budgets, health checks)
        setattr(config.loop, key, value)
    return config


def _model(path: str) -> FakeChatModel:
    right = {t.prompt: t.answer for t in HELDOUT[: SKILL.get(path, 0)]}
    return FakeChatModel(lambda prompt, i: right.get(prompt, "no idea"), name=path)


class _Parts:
    def __init__(self, store: Any, step_s: float) -> None:
        self.store, self.step_s = store, step_s

    def collect(self, model: Any, tasks: list[Task], round: int) -> dict[str, int]:
        time.sleep(self.step_s)
        examples = []
        for t in tasks:
            good = Example(
                kind="attempt",
                prompt=t.prompt,
                completion=t.answer or "",
                task_id=t.id,
                round=round,
                model=model.name,
                passed=True,
                metadata={"split": "train"},
            )
            bad = good.model_copy(
                update={
                    "completion": "no idea",
                    "passed": False,
                    "reason": "expected " + (t.answer or ""),
                }
            )
            positive = good.model_copy(update={"kind": "positive"})
            negative = positive.model_copy(
                update={
                    "kind": "negative",
                    "agent": "inject",
                    "error_type": "off_by_one",
                    "completion": f"{t.answer}1",
                    "passed": False,
                    "parent_id": positive.id,
                }
            )
            pair = positive.model_copy(
                update={
                    "kind": "pair",
                    "rejected": negative.completion,
                    "parent_id": positive.id,
                }
            )
            examples += [good, bad, positive, negative, pair]
        return {"new": self.store.add(examples), "samples": 2 * len(tasks)}

    def train(self, base: str, sft: Any, dpo: Any, config: Any, out_dir: Path) -> Any:
        time.sleep(self.step_s)
        round = int(out_dir.parent.name.split("-")[1])
        return SimpleNamespace(
            model_path=f"model-{round}", stages=[SimpleNamespace(losses=[1.0, 0.5])]
        )


def start_scripted_run(
    out_dir: str | Path,
    *,
    rounds: int = 2,
    require_approval: bool = False,
    step_s: float = 0.0,
    resume: bool = False,
    on_event: Any = None,
    student: Callable[[str], ChatModel] | None = None,
    **loop: Any,
) -> LoopHandle:
    """Run the scripted loop in a background thread (see the module docstring)."""
    from selfimprove.api import store_config
    from selfimprove.graphs.collect import CollectSettings, make_collector
    from selfimprove.graphs.round import RoundDeps
    from selfimprove.memory import open_store

    config = scripted_config(out_dir, rounds=rounds, require_approval=require_approval, **loop)
    out = Path(out_dir)

    def run() -> Any:
        with run_lock(out):
            store = open_store(store_config(config))
            parts, grader = _Parts(store, step_s), Grader()
            settings = CollectSettings(**COLLECT)
            collect = make_collector(grader, store, settings) if student else parts.collect
            deps = RoundDeps(
                config=config,
                task_set=TaskSet(train=TRAIN, heldout=HELDOUT),
                store=store,
                grader=grader,
                load_model=student or _model,
                collect=collect,
                train=parts.train,
                out_dir=out,
                show_progress=False,
            )
            return drive_deps(deps, None if resume else "base", on_event=on_event)

    out.mkdir(parents=True, exist_ok=True)
    return LoopHandle(run, out)

"""SIGKILL at each stage of a round, then ``selfimprove run --resume``: nothing lost or doubled.

The run is a real ``selfimprove run`` process (the tiny model, the sandbox, the
Chroma store, TRL). The test watches its event stream and kills it with SIGKILL
when a stage shows up, resumes it in a new process, and compares the result with
an uninterrupted run of the same config: the same rounds, gate decisions and
metrics, and the same set of stored example ids (content hashes), so no example
was lost and none was stored twice. Where exactly the kill lands within a stage
varies from run to run; every point has to be safe.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from selfimprove.config import StoreConfig
from selfimprove.events import Event, EventLog
from selfimprove.memory import open_store
from selfimprove.runs import Run

Trigger = Callable[[list[Event]], bool]


def _after(kind: str, **data: object) -> Trigger:
    """The first round-1 event of ``kind`` whose data has these values."""

    def seen(events: list[Event]) -> bool:
        return any(
            e.kind == kind and e.round == 1 and all(e.data.get(k) == v for k, v in data.items())
            for e in events
        )

    return seen


def _evaluating_the_candidate(events: list[Event]) -> bool:
    trained = next((i for i, e in enumerate(events) if e.kind == "training_step"), None)
    return trained is not None and any(
        e.kind == "progress" and e.data.get("step") == "generating" for e in events[trained:]
    )


STAGES: dict[str, Trigger] = {
    "generation": _after("progress", step="generating"),
    "verification": _after("batch_verified"),
    "storing": _after("collected"),
    "training": _after("training_step"),
    "evaluation": _evaluating_the_candidate,
    "gate": _after("gate"),
}


def _config(folder: Path, model: str) -> Path:
    out = folder / "run"
    data = {
        "student": {"model": model},
        "tasks": {"suites": ["arithmetic"], "heldout_per_suite": 10, "train_per_suite": 12},
        "loop": {"rounds": 1, "samples_per_task": 4, "out_dir": str(out)},
        "store": {"embedding": "hash", "path": str(out / "store")},
        "training": {"max_steps": 4, "batch_size": 4},
    }
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _selfimprove(*args: str) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.Popen(
        [sys.executable, "-m", "selfimprove.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> None:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]


def _outcome(out: Path) -> tuple[list, set[str]]:
    rounds = [(r.round, r.promoted, r.metrics, r.counts) for r in Run(out).rounds()]
    store = open_store(StoreConfig(path=out / "store", embedding="hash"))
    return rounds, {e.id for e in store.find()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, warm_model) -> tuple[list, set[str]]:
    folder = tmp_path_factory.mktemp("reference")
    _finish(_selfimprove("run", str(_config(folder, warm_model))))
    return _outcome(folder / "run")


def _kill_at(stage: str, folder: Path, model: str) -> None:
    config = _config(folder, model)
    log = EventLog(folder / "run" / "events.jsonl")
    proc = _selfimprove("run", str(config))
    deadline = time.monotonic() + 300
    while not STAGES[stage](log.read()):
        assert proc.poll() is None, f"the run ended before reaching {stage}"
        assert time.monotonic() < deadline, f"no {stage} event within 300 s"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert Run(folder / "run").status().state == "interrupted"
    _finish(_selfimprove("run", str(config), "--resume"))


def _check_same(folder: Path, reference: tuple[list, set[str]]) -> None:
    rounds, ids = _outcome(folder / "run")
    ref_rounds, ref_ids = reference
    assert rounds == ref_rounds  # same rounds, gate decisions, metrics and counts
    assert ids == ref_ids, (len(ids - ref_ids), len(ref_ids - ids))  # nothing lost or doubled
    assert Run(folder / "run").status().state == "finished"


def test_sigkill_while_generating_then_resume_matches_an_uninterrupted_run(
    tmp_path, warm_model, reference
):
    _kill_at("generation", tmp_path, warm_model)
    _check_same(tmp_path, reference)


@pytest.mark.slow
@pytest.mark.parametrize("stage", [s for s in STAGES if s != "generation"])
def test_sigkill_at_every_stage_then_resume_matches_an_uninterrupted_run(
    tmp_path, warm_model, reference, stage
):
    _kill_at(stage, tmp_path, warm_model)
    _check_same(tmp_path, reference)

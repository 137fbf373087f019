"""Slow: a real round of the loop on the embedded student (SmolLM2-135M-Instruct).

Collect with every agent on, SFT then DPO, evaluate, gate; about 4 minutes on 2
cores. Run with ``make test-slow``.
"""

from __future__ import annotations

import pytest

from selfimprove.api import run_loop
from selfimprove.config import Config
from selfimprove.eval.report import read_report
from selfimprove.memory import open_store
from selfimprove.trainers import load_manifest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2() -> str:
    from selfimprove.models.base import ModelError
    from selfimprove.models.student import resolve_model_path

    try:
        return resolve_model_path("smollm2-135m-instruct")
    except ModelError as exc:
        pytest.skip(f"embedded SmolLM2 unavailable: {exc}")


def test_a_real_round_on_smollm2(tmp_path, smollm2):
    cfg = Config()
    cfg.tasks.suites = ["compare", "arithmetic", "code"]
    cfg.tasks.heldout_per_suite = 12
    cfg.loop.rounds = 1
    cfg.loop.tasks_per_round = 36
    cfg.loop.out_dir = tmp_path / "run"
    cfg.training.method = "sft_dpo"
    cfg.training.max_steps = 6
    rounds = run_loop(cfg, show_progress=False)

    assert [r.round for r in rounds] == [0, 1]
    base, one = rounds
    assert base.model_path == smollm2
    counts = one.counts
    assert counts["samples"] == 36 * 4
    assert counts["positive"] > 0 and counts["pair"] > 0, counts  # the student solves some
    assert counts["self_debug/debugged"] == 36 - counts["tasks_solved"]
    assert counts["inject/kept"] > 0  # verified-failing edits of its own right answers
    model = tmp_path / "run" / "round-1" / "model"
    manifest = load_manifest(model)
    assert [s.name for s in manifest.stages] == ["sft", "dpo"]
    assert len(one.train_loss) == 12
    assert manifest.datasets["sft"].rows > 0 and manifest.datasets["dpo"].rows > 0
    # the gate's decision follows from the two evaluations
    gained = one.metrics["heldout_pass_at_1"] > base.metrics["heldout_pass_at_1"]
    drops = [
        k for k in base.metrics if one.metrics[k] < base.metrics[k] and k != "heldout_pass_at_1"
    ]
    assert one.promoted == (gained and (cfg.loop.max_suite_drop is None or not drops))
    assert read_report(tmp_path / "run" / "report.json") == rounds
    store = open_store(cfg.store.model_copy(update={"path": tmp_path / "run" / "store"}))
    stored = store.find({"$and": [{"round": 1}, {"kind": "positive"}]})
    assert stored and all(e.metadata["split"] == "train" and e.model for e in stored)
    assert set(one.timings) == {"collect", "train", "evaluate"}
